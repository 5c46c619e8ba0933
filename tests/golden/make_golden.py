"""Write the golden vectors that the Swift package (ios_app) is tested against.

Run from the repository root:  python tests/golden/make_golden.py
Every output file is deterministic and records, under "generated_by", the one line of Python
that produced its values. The Swift tests read them through #filePath (../tests/golden).

Files:
  tokenizer.json   CLIPTokenizer ids (padding and truncation to 77) for a varied prompt list
  random.json      torch.randn on a seeded CPU generator, several seeds and shapes
  sampler.json     alphas_cumprod samples, timesteps per spacing and step count, and complete
                   DDIM trajectories of the fake model below (both prediction types, with and
                   without guidance, UNet batch 1 and 2)
  pipelines.json   pipeline.json samples: valid, chunked UNet, unknown version, missing keys, wrong
                   types and values (impossible latent scale and betas, paths leaving the folder), the
                   newer format (non-square "image", float32 input_ids, pad id 0) and the older ones
                   (square "image_size", int32 ids, no loras, no pad id); format_version 2: one valid
                   folder per sampler (docs/contracts.md section 3, lists as
                   tests/golden/make_sampler_golden.py records them from diffusers) and malformed
                   sampler records; format_version 3: a folder with the VAE encoder of image to
                   image (components.encoder), one whose encoder has no file, several sizes in one
                   folder (`sizes`, the multifunction packages' functions) and malformed size lists
  blocks_manifests.json  manifest.json samples of `export-blocks` folders: valid, and malformed

The fake model (identical in ios_app/Tests/SnapFusionKitTests/FakeModel.swift):
  fake(z, t, c) = float32((0.3 + 0.4 * t / 1000) * z + 0.05 * c / (1 + z * z)), computed in float64
  on the float32 latent z, integer timestep t and conditioning scalar c. Only +, -, *, / are used,
  so Python and Swift round identically. The fake text encoder maps a prompt to
  c = (number of prompt tokens, without start/end/padding) / 10, so the empty prompt gives c = 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import CLIPTokenizer

from snapfusion_coreml import schedule
from snapfusion_coreml.config import SchedulerConfig

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
TOKENIZER_DIR = ROOT / "models" / "tokenizer"
MAX_LENGTH = 77

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "A Photo Of An ASTRONAUT",
    "",
    "   ",
    "  leading and trailing spaces  ",
    "runs   of\twhitespace\n\nand\r\nnewlines",
    "punctuation!!! commas, periods... (parentheses) [brackets] {braces} \"quotes\" 'single'",
    "it's a dog's life, they're here, we've gone, I'm fine, you'll see, he'd go, don't, can't",
    "o'clock ''s 'S IT'S",
    "digits 1234567890 and 3.14159 and 2024-01-01 and 1,000,000",
    "emoji 🚀🌕 rocket to the moon 👩‍🚀 astronaut 🇫🇷",
    "café naïve façade résumé Ångström Zürich São Paulo",
    "Cafe\u0301 decomposed accents e\u0301e\u0301",
    "東京の夜景 写真 北京 서울의 밤",
    "Привет мир, Ελληνικά ΟΔΟΣ, עברית, العربية, हिन्दी",
    "fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;",
    "<|startoftext|>literal special tokens<|endoftext|> and <|EndOfText|>",
    "non\u00a0breaking\u3000ideographic\u2003em\u200bzero-width\u0085next-line\u001cfile-sep",
    "İstanbul straße ǅemal ﬁne ligature Ⅻ roman ½ fraction ²",
    "x" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    "tabs\tand \u2028line separator\u2029paragraph",
    "mixed123abc456 v2.0-beta_test@example.com #hashtag $100 50% a+b=c",
    " ".join(f"word{i}" for i in range(120)),
    "a highly detailed, intricate portrait of a " + ", ".join(["majestic lion"] * 40),
]

# (seed, shape): numel < 16, == 16, multiples of 16 and not, and a latent shape.
RANDOM_CASES = [
    (0, [1]), (0, [5]), (1, [15]), (42, [16]), (42, [17]), (7, [2, 3, 4]), (2024, [33]),
    (123456789, [1, 4, 8, 8]), (0, [1, 4, 8, 8]), (4294967297, [20]), (3, [1, 4, 5, 7]),
]

SPACINGS = ("trailing", "leading", "linspace")
STEP_COUNTS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 25, 32, 50, 64, 100, 250, 1000)
CUMPROD_SAMPLES = (0, 1, 124, 249, 500, 874, 998, 999)

LATENT_SHAPE = (1, 4, 8, 8)
COND_PROMPT = "a photo of an astronaut"  # 5 tokens: c = 0.5
UNCOND_PROMPT = ""  # c = 0
TRAJECTORIES = [
    # (prediction_type, steps, guidance_scale, unet_batch, seed, spacing)
    ("v_prediction", 8, 7.5, 2, 0, "trailing"),
    ("v_prediction", 8, 7.5, 1, 0, "trailing"),
    ("v_prediction", 4, 1.0, 2, 1, "trailing"),
    ("epsilon", 8, 7.5, 2, 2, "trailing"),
    ("epsilon", 10, 1.0, 1, 3, "leading"),
    ("v_prediction", 6, 3.0, 2, 4, "linspace"),
    ("v_prediction", 4, 0.5, 2, 5, "trailing"),  # 0 < w < 1: no guidance (schedule.uses_guidance)
]


def write(name: str, generated_by: str, payload: dict[str, Any], out: Path) -> None:
    """One key per line; every element of a top-level list on one compact line (small diffs)."""
    data = {"generated_by": generated_by, **payload}

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(dump(v) for v in value)
            lines.append(f" {dump(key)}: [\n  {items}\n ]")
        else:
            lines.append(f" {dump(key)}: {dump(value)}")
    (out / name).write_text("{\n" + ",\n".join(lines) + "\n}\n")


def float32_list(tensor: torch.Tensor) -> list[float]:
    """float32 values written with their shortest float32 repr (parsed back to the same float32)."""
    return [float(str(np.float32(v))) for v in tensor.flatten().tolist()]


def tokenizer_cases(out: Path) -> None:
    tokenizer = CLIPTokenizer(str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"))
    cases = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids
        assert len(ids) == MAX_LENGTH
        cases.append({"prompt": prompt, "ids": ids})
    write(
        "tokenizer.json",
        "CLIPTokenizer('models/tokenizer/vocab.json', 'models/tokenizer/merges.txt')"
        "(prompt, padding='max_length', max_length=77, truncation=True).input_ids",
        {"max_length": MAX_LENGTH, "cases": cases}, out,
    )


LATENT_CASES = [(0, [1, 4, 64, 64]), (42, [1, 4, 96, 64])]
LATENT_STRIDE = 41


def fnv1a64(data: bytes) -> str:
    """FNV-1a, 64 bits, as 16 hex digits: a digest of a whole tensor both languages compute without a library."""
    digest = 0xCBF29CE484222325
    for byte in data:
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def random_cases(out: Path) -> None:
    cases = []
    for seed, shape in RANDOM_CASES:
        values = float32_list(schedule.initial_latents(seed, tuple(shape)))
        cases.append({"seed": seed, "shape": shape, "values": values})
    # Real latent shapes (512x512 and 768x512 images), every LATENT_STRIDE-th value, and a digest
    # of all float32 values (little-endian, C order): torch fills them with its vectorised float
    # sampler, which the Swift port reproduces bit for bit on x86-64 with AVX2.
    samples = []
    for seed, shape in LATENT_CASES:
        latents = schedule.initial_latents(seed, tuple(shape))
        values = float32_list(latents)[::LATENT_STRIDE]
        digest = fnv1a64(latents.to(torch.float32).contiguous().numpy().astype("<f4").tobytes())
        samples.append({"seed": seed, "shape": shape, "stride": LATENT_STRIDE, "values": values, "fnv1a64": digest})
    write(
        "random.json",
        "torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed), dtype=torch.float32).flatten().tolist()"
        " (latent_samples: the same, [::stride]; fnv1a64: FNV-1a 64 of all float32 little-endian bytes)",
        {"cases": cases, "latent_samples": samples}, out,
    )


def fake_model(z: np.ndarray, t: int, c: float) -> np.ndarray:
    """The documented fake UNet: elementwise in z, computed in float64, returned as float32."""
    z64 = z.astype(np.float64)
    return ((0.3 + 0.4 * t / 1000) * z64 + 0.05 * c / (1 + z64 * z64)).astype(np.float32)


def prompt_condition(tokenizer: CLIPTokenizer, prompt: str) -> float:
    """The fake text encoder's scalar: prompt tokens (no start/end/padding) / 10."""
    return len(tokenizer(prompt, truncation=True, max_length=MAX_LENGTH).input_ids[1:-1]) / 10


def trajectory(prediction_type: str, steps: int, scale: float, unet_batch: int, seed: int, spacing: str,
               tokenizer: CLIPTokenizer) -> dict[str, Any]:
    config = SchedulerConfig(prediction_type=prediction_type, timestep_spacing=spacing)
    c_cond = prompt_condition(tokenizer, COND_PROMPT)
    c_uncond = prompt_condition(tokenizer, UNCOND_PROMPT)
    guided = schedule.uses_guidance(scale)

    def denoise(z: torch.Tensor, t: int) -> torch.Tensor:
        zn = z.numpy()
        cond = fake_model(zn, t, c_cond)
        if not guided:
            return torch.from_numpy(cond)
        uncond = fake_model(zn, t, c_uncond)
        out = uncond + np.float32(scale) * (cond - uncond)  # schedule.guide in float32
        return torch.from_numpy(out.astype(np.float32))

    initial = schedule.initial_latents(seed, LATENT_SHAPE)
    latents: list[list[float]] = [float32_list(initial)]
    final = schedule.sample(denoise, initial, config, steps,
                            on_step=lambda i, t, z: latents.append(float32_list(z)))
    assert latents[-1] == float32_list(final)
    return {
        "prediction_type": prediction_type, "steps": steps, "guidance_scale": scale, "unet_batch": unet_batch,
        "seed": seed, "timestep_spacing": spacing, "shape": list(LATENT_SHAPE),
        "prompt": COND_PROMPT, "negative_prompt": UNCOND_PROMPT, "condition": c_cond, "uncondition": c_uncond,
        "timesteps": schedule.timesteps(config, steps), "latents": latents,
    }


def sampler_cases(out: Path) -> None:
    tokenizer = CLIPTokenizer(str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"))
    cumprod = {}
    for beta_schedule in ("scaled_linear", "linear"):
        table = schedule.alphas_cumprod(SchedulerConfig(beta_schedule=beta_schedule))
        cumprod[beta_schedule] = {str(t): float(table[t]) for t in CUMPROD_SAMPLES}
    spacing_cases = []
    for spacing in SPACINGS:
        for offset in ((0, 1) if spacing == "leading" else (0,)):
            config = SchedulerConfig(timestep_spacing=spacing, steps_offset=offset)
            for steps in STEP_COUNTS:
                ts = schedule.timesteps(config, steps)
                assert len(ts) == steps and min(ts) >= 0, (spacing, steps, ts)
                spacing_cases.append({"timestep_spacing": spacing, "steps_offset": offset, "steps": steps,
                                      "num_train_timesteps": 1000, "timesteps": ts})
    trajectories = [trajectory(*case, tokenizer) for case in TRAJECTORIES]
    write(
        "sampler.json",
        "schedule.sample(denoise, schedule.initial_latents(seed, (1, 4, 8, 8)), "
        "SchedulerConfig(prediction_type=p, timestep_spacing=s), steps, on_step=record) with the fake model "
        "of make_golden.py; schedule.timesteps(SchedulerConfig(timestep_spacing=s, steps_offset=o), steps); "
        "schedule.alphas_cumprod(SchedulerConfig(beta_schedule=b))[t]",
        {"fake_model": "float32((0.3 + 0.4 * t / 1000) * z + 0.05 * c / (1 + z * z)) in float64; "
                       "c = prompt tokens / 10; guided = uncond + float32(w) * (cond - uncond) in float32",
         "alphas_cumprod": cumprod, "spacings": spacing_cases, "trajectories": trajectories}, out,
    )


def component(file: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], sha: str) -> dict[str, Any]:
    return {"file": file, "sha256": sha, "precision": "float16", "deployment_target": "iOS16",
            "attention": "split_einsum", "compression": {"mode": "palettize", "bits": 6, "method": "kmeans",
                                                         "granularity": "per_tensor", "layers": {}},
            "inputs": inputs, "outputs": outputs}


def io(name: str, shape: list[int], dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype}


def valid_pipeline() -> dict[str, Any]:
    return {
        "format_version": 1,
        "tool": {"name": "snapfusion-coreml", "version": "0.1.0"},
        "source": {"model": "models/default", "unet_layout": "snapfusion-tiny", "loras": []},
        "prediction_type": "v_prediction",
        "image": {"height": 64, "width": 64},
        "latent": {"channels": 4, "height": 8, "width": 8, "scale_factor": 0.18215},
        "noise_schedule": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                           "beta_schedule": "scaled_linear"},
        "sampler": {"name": "ddim", "eta": 0.0, "timestep_spacing": "trailing", "steps_offset": 0,
                    "default_steps": 8, "timesteps": [999, 874, 749, 624, 499, 374, 249, 124],
                    "final_alpha_cumprod": 1.0},
        "guidance": {"default_scale": 7.5, "unet_batch": 2},
        "tokenizer": {"vocab": "vocab.json", "merges": "merges.txt", "max_length": 77,
                      "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
        "components": {
            "text_encoder": component("TextEncoder.mlpackage", [io("input_ids", [1, 77], "float32")],
                                      [io("last_hidden_state", [1, 77, 768]), io("pooled_outputs", [1, 768])], "1" * 64),
            "unet": {**component("Unet.mlpackage", [io("sample", [2, 4, 8, 8]), io("timestep", [2]),
                                                    io("encoder_hidden_states", [2, 768, 1, 77])],
                                 [io("noise_pred", [2, 4, 8, 8])], "2" * 64), "chunks": None},
            "decoder": component("VAEDecoder.mlpackage", [io("z", [1, 4, 8, 8])], [io("image", [1, 3, 64, 64])], "3" * 64),
        },
    }


SAMPLER_KEYS = ("name", "scheduler_class", "default_steps", "timestep_spacing", "steps_offset", "timesteps",
                "previous_timesteps", "current_timesteps", "sigmas", "init_noise_sigma", "scale_model_input",
                "final_alpha_cumprod", "eta", "clip_sample", "use_karras_sigmas", "solver_order", "solver_type",
                "lower_order_final", "euler_at_final", "final_sigmas_type", "original_inference_steps", "timestep_scaling")


def sampler_record(**fields: Any) -> dict[str, Any]:
    """A format_version 2 sampler record: every key of docs/contracts.md section 3, null where unused."""
    assert set(fields) <= set(SAMPLER_KEYS), set(fields) - set(SAMPLER_KEYS)
    return {key: fields.get(key) for key in SAMPLER_KEYS}


# The lists of SD-1.5-scheduled models (leading, offset 1) and SD-Turbo (trailing), as diffusers plans
# them (tests/golden/samplers.json holds the same lists from the scheduler objects).
SD15_PLAN = {"timestep_spacing": "leading", "steps_offset": 1, "init_noise_sigma": 1.0, "scale_model_input": False}
TURBO_PLAN = {"timestep_spacing": "trailing", "steps_offset": 1, "init_noise_sigma": 14.614646911621094,
              "scale_model_input": True}
V2_SAMPLERS = {
    "ddim": sampler_record(name="ddim", scheduler_class="DDIMScheduler", default_steps=4, **SD15_PLAN,
                           timesteps=[751.0, 501.0, 251.0, 1.0], previous_timesteps=[501, 251, 1, -1],
                           final_alpha_cumprod=0.99915, eta=0.0),
    "pndm": sampler_record(name="pndm", scheduler_class="PNDMScheduler", default_steps=4, **SD15_PLAN,
                           timesteps=[751.0, 501.0, 501.0, 251.0, 1.0], previous_timesteps=[501, 501, 251, 1, -1],
                           current_timesteps=[751, 751, 501, 251, 1], final_alpha_cumprod=0.99915),
    "dpmsolver++": sampler_record(name="dpmsolver++", scheduler_class="DPMSolverMultistepScheduler", default_steps=8,
                                  **SD15_PLAN, timesteps=[999.0, 890.0, 746.0, 549.0, 299.0, 90.0, 12.0, 0.0],
                                  sigmas=[14.614647, 7.9029446, 4.027746, 1.9103628, 0.8288717, 0.3211217, 0.10719939,
                                          0.029167535, 0.0],
                                  solver_order=2, solver_type="midpoint", lower_order_final=True, euler_at_final=False,
                                  final_sigmas_type="zero", use_karras_sigmas=False),
    "euler": sampler_record(name="euler", scheduler_class="EulerDiscreteScheduler", default_steps=1, **TURBO_PLAN,
                            timesteps=[999.0], sigmas=[14.614647, 0.0], use_karras_sigmas=False, final_sigmas_type="zero"),
    "euler_ancestral": sampler_record(name="euler_ancestral", scheduler_class="EulerAncestralDiscreteScheduler",
                                      default_steps=2, **TURBO_PLAN, timesteps=[999.0, 499.0],
                                      sigmas=[14.614647, 1.612887, 0.0]),
    "lcm": sampler_record(name="lcm", scheduler_class="LCMScheduler", default_steps=4, **SD15_PLAN,
                          timesteps=[999.0, 759.0, 499.0, 259.0], previous_timesteps=[759, 499, 259, -1],
                          final_alpha_cumprod=1.0, original_inference_steps=50, timestep_scaling=10.0),
    "tcd": sampler_record(name="tcd", scheduler_class="TCDScheduler", default_steps=4, **SD15_PLAN,
                          timesteps=[999.0, 759.0, 499.0, 259.0], previous_timesteps=[759, 499, 259, 0],
                          final_alpha_cumprod=1.0, eta=0.3, original_inference_steps=50),
}


def v2_pipeline(valid: dict[str, Any], sampler: str, prediction_type: str = "epsilon") -> dict[str, Any]:
    """`valid` as a format_version 2 folder sampling with `sampler`."""
    out = json.loads(json.dumps(valid))
    out.update(format_version=2, prediction_type=prediction_type, sampler=json.loads(json.dumps(V2_SAMPLERS[sampler])))
    out["guidance"]["embedding"] = None
    return out


def v2_pipeline_cases(valid: dict[str, Any]) -> list[dict[str, Any]]:
    cases = [{"name": f"v2_{name}", "expect": "ok", "pipeline": v2_pipeline(valid, name)} for name in V2_SAMPLERS]
    # A full LCM model: guidance-distilled UNet with a guidance embedding, batch 1.
    lcm = v2_pipeline(valid, "lcm")
    lcm["guidance"] = {"default_scale": 8.5, "unet_batch": 1, "embedding": {"input": "timestep_cond", "dim": 256}}
    unet = lcm["components"]["unet"]
    unet["inputs"] = [io("sample", [1, 4, 8, 8]), io("timestep", [1]), io("encoder_hidden_states", [1, 768, 1, 77]),
                      io("timestep_cond", [1, 256])]
    unet["outputs"] = [io("noise_pred", [1, 4, 8, 8])]
    cases.append({"name": "v2_lcm_guidance_embedding", "expect": "ok", "pipeline": lcm})
    cases.append({"name": "v2_euler_v_prediction", "expect": "ok",
                  "pipeline": v2_pipeline(valid, "euler", "v_prediction")})
    unknown = v2_pipeline(valid, "euler")
    unknown["sampler"]["name"] = "heun"
    sigmas_short = v2_pipeline(valid, "euler_ancestral")
    sigmas_short["sampler"]["sigmas"] = [14.614647, 1.612887]
    no_sigmas = v2_pipeline(valid, "dpmsolver++")
    no_sigmas["sampler"]["sigmas"] = None
    previous_short = v2_pipeline(valid, "ddim")
    previous_short["sampler"]["previous_timesteps"] = [501, 251, 1]
    no_current = v2_pipeline(valid, "pndm")
    no_current["sampler"]["current_timesteps"] = None
    empty = v2_pipeline(valid, "lcm")
    empty["sampler"].update(timesteps=[], previous_timesteps=[])
    fractional = v2_pipeline(valid, "tcd")
    fractional["sampler"]["timesteps"][0] = 999.5
    bad_embedding = json.loads(json.dumps(lcm))
    bad_embedding["guidance"]["embedding"]["input"] = "guidance"
    cases += [
        {"name": "v2_unknown_sampler", "expect": "unsupportedSampler", "pipeline": unknown},
        {"name": "v2_sigmas_one_short", "expect": "malformed", "pipeline": sigmas_short},
        {"name": "v2_dpmsolver_without_sigmas", "expect": "malformed", "pipeline": no_sigmas},
        {"name": "v2_ddim_previous_one_short", "expect": "malformed", "pipeline": previous_short},
        {"name": "v2_pndm_without_current", "expect": "malformed", "pipeline": no_current},
        {"name": "v2_empty_timesteps", "expect": "malformed", "pipeline": empty},
        {"name": "v2_tcd_fractional_timestep", "expect": "malformed", "pipeline": fractional},
        {"name": "v2_embedding_other_input", "expect": "malformed", "pipeline": bad_embedding},
    ]
    return cases


def v3_encoder_cases(valid: dict[str, Any]) -> list[dict[str, Any]]:
    """format_version 3: the optional VAE encoder (image to image; docs/contracts.md section 1)."""
    with_encoder = v2_pipeline(valid, "ddim")
    with_encoder["format_version"] = 3
    encoder = component("VAEEncoder.mlpackage", [io("z", [1, 3, 64, 64])], [io("latent", [1, 8, 8, 8])], "4" * 64)
    with_encoder["components"]["encoder"] = {**encoder, "attention": None, "compression": {"mode": "none"}}
    no_file = json.loads(json.dumps(with_encoder))
    no_file["components"]["encoder"]["file"] = None
    return [  # (a format 3 folder without an encoder reads as the v2 cases do)
        {"name": "v3_with_encoder", "expect": "ok", "pipeline": with_encoder},
        {"name": "v3_encoder_without_file", "expect": "malformed", "pipeline": no_file},
    ]


def size_entry(height: int, width: int) -> dict[str, Any]:
    """One `sizes` entry of image height x width (latent = image / 8), as convert writes it."""
    return {"function": f"image_{height}x{width}", "image": {"height": height, "width": width},
            "latent": {"height": height // 8, "width": width // 8}}


def v3_size_cases(valid: dict[str, Any]) -> list[dict[str, Any]]:
    """format_version 3: `sizes` (docs/contracts.md section 2): three sizes of multifunction packages
    (iOS18), one size written as null (absent reads the same: the v2 cases), and size lists no
    reader may accept."""
    sizes = v2_pipeline(valid, "ddim")
    sizes["format_version"] = 3
    for item in sizes["components"].values():
        item["deployment_target"] = "iOS18"
        item["compression"]["granularity"] = "per_grouped_channel"
    sizes["sizes"] = [size_entry(64, 64), size_entry(64, 96), size_entry(96, 64)]
    one_size = {**v2_pipeline(valid, "ddim"), "format_version": 3, "sizes": None}
    non_square_default = json.loads(json.dumps(sizes))  # --image-size 96x64,64x64: the default is 96x64
    non_square_default.update(image={"height": 96, "width": 64}, latent={**sizes["latent"], "height": 12, "width": 8})
    non_square_default["sizes"] = [size_entry(96, 64), size_entry(64, 64)]
    components = non_square_default["components"]
    components["unet"]["inputs"][0]["shape"] = components["unet"]["outputs"][0]["shape"] = [2, 4, 12, 8]
    components["decoder"]["inputs"][0]["shape"] = [1, 4, 12, 8]
    components["decoder"]["outputs"][0]["shape"] = [1, 3, 96, 64]

    def edited(edit) -> dict[str, Any]:
        out = json.loads(json.dumps(sizes))
        edit(out)
        return out

    return [
        {"name": "v3_three_sizes", "expect": "ok", "pipeline": sizes},
        {"name": "v3_non_square_default_size", "expect": "ok", "pipeline": non_square_default},
        {"name": "v3_sizes_null", "expect": "ok", "pipeline": one_size},
        {"name": "v3_sizes_empty", "expect": "malformed", "pipeline": edited(lambda d: d.update(sizes=[]))},
        {"name": "v3_sizes_first_not_the_default", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"].reverse())},
        {"name": "v3_sizes_repeated", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"].append(size_entry(64, 96)))},
        {"name": "v3_sizes_function_misnamed", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"][1].update(function="image_96x64"))},
        {"name": "v3_sizes_image_not_8x_latent", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"][2]["latent"].update(height=11))},
        {"name": "v3_sizes_latent_zero", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"][1]["latent"].update(width=0))},
        {"name": "v3_sizes_without_function", "expect": "malformed",
         "pipeline": edited(lambda d: d["sizes"][1].pop("function"))},
    ]


def pipeline_cases(out: Path) -> None:
    valid = valid_pipeline()
    chunked = json.loads(json.dumps(valid))
    chunked["components"]["unet"]["file"] = None  # as convert/pipeline_manifest.py writes chunked components
    chunked["components"]["unet"]["chunks"] = ["UnetChunk1.mlpackage", "UnetChunk2.mlpackage"]
    epsilon = json.loads(json.dumps(valid))
    epsilon.update(prediction_type="epsilon", guidance={"default_scale": 7.5, "unet_batch": 1})
    unknown_version = {**valid, "format_version": 4}
    no_files = json.loads(json.dumps(valid))
    no_files["components"]["decoder"]["file"] = None
    no_sampler = {k: v for k, v in valid.items() if k != "sampler"}
    bad_prediction = {**valid, "prediction_type": "sample"}
    with_lora = json.loads(json.dumps(valid))  # --image-size 64x96: latent 8x12
    with_lora.update(image={"height": 64, "width": 96}, latent={**valid["latent"], "width": 12})
    with_lora["source"]["loras"] = [{"file": "style.safetensors", "sha256": "4" * 64, "scale": 0.8,
                                      "path": "/loras/style.safetensors"}]
    unet = with_lora["components"]["unet"]
    unet["inputs"][0]["shape"], unet["outputs"][0]["shape"] = [2, 4, 8, 12], [2, 4, 8, 12]
    decoder = with_lora["components"]["decoder"]
    decoder["inputs"][0]["shape"], decoder["outputs"][0]["shape"] = [1, 4, 8, 12], [1, 3, 64, 96]
    text_only = json.loads(json.dumps(valid))
    del text_only["components"]["unet"], text_only["components"]["decoder"]
    # Newer converters: "image": {"height", "width"} instead of image_size (non-square), float32
    # input_ids (Apple's convention) and the tokenizer's own pad id (SD-2 pads with id 0, "!").
    non_square = {k: v for k, v in json.loads(json.dumps(valid)).items() if k != "image_size"}
    non_square["image"] = {"height": 96, "width": 64}
    non_square["latent"].update(height=12, width=8)
    non_square["tokenizer"]["pad_token_id"] = 0
    non_square["components"]["text_encoder"]["inputs"] = [io("input_ids", [1, 77], "float32")]
    non_square["components"]["unet"]["inputs"][0]["shape"] = [2, 4, 12, 8]
    non_square["components"]["unet"]["outputs"][0]["shape"] = [2, 4, 12, 8]
    non_square["components"]["decoder"]["inputs"] = [io("z", [1, 4, 12, 8])]
    non_square["components"]["decoder"]["outputs"] = [io("image", [1, 3, 96, 64])]
    # Folders written by 0.1 converters: a square "image_size" and int32 input_ids; readers keep them.
    legacy = {k: v for k, v in json.loads(json.dumps(valid)).items() if k != "image"}
    legacy["image_size"] = valid["image"]["height"]
    legacy["components"]["text_encoder"]["inputs"] = [io("input_ids", [1, 77], "int32")]
    # Older converters wrote no source.loras and no tokenizer.pad_token_id: read as [] and the eos id.
    no_pad = json.loads(json.dumps(legacy))
    del no_pad["source"]["loras"], no_pad["tokenizer"]["pad_token_id"]
    negative_latent = json.loads(json.dumps(valid))
    negative_latent["latent"]["height"] = -8
    text_height = json.loads(json.dumps(valid))
    text_height["latent"]["width"] = "8"
    batch_three = json.loads(json.dumps(valid))
    batch_three["guidance"]["unet_batch"] = 3
    rising = json.loads(json.dumps(valid))
    rising["sampler"]["timesteps"] = [124, 249]
    no_inputs = json.loads(json.dumps(valid))
    del no_inputs["components"]["unet"]["inputs"]
    float64_ids = json.loads(json.dumps(valid))
    float64_ids["components"]["text_encoder"]["inputs"][0]["dtype"] = "float64"
    # values no sampler can use, and package paths that leave the folder
    scale_zero = json.loads(json.dumps(valid))
    scale_zero["latent"]["scale_factor"] = 0
    beta_end_one = json.loads(json.dumps(valid))
    beta_end_one["noise_schedule"]["beta_end"] = 1.0
    beta_start_negative = json.loads(json.dumps(valid))
    beta_start_negative["noise_schedule"]["beta_start"] = -0.001
    outside = json.loads(json.dumps(valid))
    outside["components"]["unet"]["file"] = "../Unet.mlpackage"
    vocab_outside = json.loads(json.dumps(valid))
    vocab_outside["tokenizer"]["vocab"] = "/etc/vocab.json"
    cases = [
        {"name": "valid", "expect": "ok", "pipeline": valid},
        {"name": "chunked_unet", "expect": "ok", "pipeline": chunked},
        {"name": "epsilon_batch1", "expect": "ok", "pipeline": epsilon},
        {"name": "non_square_with_lora", "expect": "ok", "pipeline": with_lora},
        {"name": "unknown_version", "expect": "unsupportedFormatVersion", "pipeline": unknown_version},
        {"name": "missing_sampler", "expect": "malformed", "pipeline": no_sampler},
        {"name": "unknown_prediction_type", "expect": "malformed", "pipeline": bad_prediction},
        {"name": "text_encoder_only", "expect": "missingComponent", "pipeline": text_only},
        {"name": "decoder_without_file", "expect": "malformed", "pipeline": no_files},
        {"name": "non_square_float_ids_pad0", "expect": "ok", "pipeline": non_square},
        {"name": "legacy_image_size_int32_ids", "expect": "ok", "pipeline": legacy},
        {"name": "legacy_no_loras_no_pad_id", "expect": "ok", "pipeline": no_pad},
        {"name": "negative_latent_height", "expect": "malformed", "pipeline": negative_latent},
        {"name": "latent_width_as_text", "expect": "malformed", "pipeline": text_height},
        {"name": "unet_batch_3", "expect": "malformed", "pipeline": batch_three},
        {"name": "timesteps_increasing", "expect": "malformed", "pipeline": rising},
        {"name": "unet_without_inputs", "expect": "malformed", "pipeline": no_inputs},
        {"name": "input_ids_float64", "expect": "malformed", "pipeline": float64_ids},
        {"name": "latent_scale_factor_zero", "expect": "malformed", "pipeline": scale_zero},
        {"name": "beta_end_one", "expect": "malformed", "pipeline": beta_end_one},
        {"name": "beta_start_negative", "expect": "malformed", "pipeline": beta_start_negative},
        {"name": "unet_file_outside_folder", "expect": "malformed", "pipeline": outside},
        {"name": "vocab_outside_folder", "expect": "malformed", "pipeline": vocab_outside},
        *v2_pipeline_cases(valid),
        *v3_encoder_cases(valid),
        *v3_size_cases(valid),
    ]
    write("pipelines.json", "the dictionaries built in make_golden.pipeline_cases() (docs/contracts.md sections 2 and 3)",
          {"cases": cases}, out)


def blocks_manifest_cases(out: Path) -> None:
    resnet = {"stage": "down_blocks.0", "index": 0, "kind": "resnet", "resolution": 8, "channels": 32,
              "in_channels": 32, "batch": 2, "package": "down_blocks.0.resnets.0.mlpackage",
              "inputs": [io("hidden_states", [2, 32, 8, 12]), io("temb", [2, 128])],
              "outputs": [io("output", [2, 32, 8, 12])]}
    transformer = {"stage": "down_blocks.1", "index": 0, "kind": "transformer", "resolution": 4, "channels": 64,
                   "in_channels": 64, "batch": 2, "package": "down_blocks.1.attentions.0.mlpackage",
                   "inputs": [io("hidden_states", [2, 64, 4, 6]), io("encoder_hidden_states", [2, 768, 1, 77])],
                   "outputs": [io("output", [2, 64, 4, 6])]}
    valid = {"format": "snapfusion-block-manifest", "version": 1, "layout": "tiny", "image_size": 64,
             "blocks": [resnet, transformer]}
    unknown_kind = json.loads(json.dumps(valid))
    unknown_kind["blocks"][1]["kind"] = "attention"
    no_inputs = json.loads(json.dumps(valid))
    del no_inputs["blocks"][0]["inputs"]
    cases = [
        {"name": "valid_non_square", "expect": "ok", "manifest": valid},
        {"name": "other_format", "expect": "malformed", "manifest": {**valid, "format": "snapfusion-latency-table"}},
        {"name": "version_2", "expect": "malformed", "manifest": {**valid, "version": 2}},
        {"name": "unknown_kind", "expect": "malformed", "manifest": unknown_kind},
        {"name": "block_without_inputs", "expect": "malformed", "manifest": no_inputs},
    ]
    write("blocks_manifests.json", "the dictionaries built in make_golden.blocks_manifest_cases() "
          "(docs/contracts.md section 5)", {"cases": cases}, out)


FILES = ("tokenizer.json", "random.json", "sampler.json", "pipelines.json", "blocks_manifests.json")


def write_all(out: Path = GOLDEN) -> list[Path]:
    """Write every golden file into `out`; returns their paths."""
    torch.set_num_threads(1)
    tokenizer_cases(out)
    random_cases(out)
    sampler_cases(out)
    pipeline_cases(out)
    blocks_manifest_cases(out)
    return [out / name for name in FILES]


def main() -> None:
    for path in write_all():
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
