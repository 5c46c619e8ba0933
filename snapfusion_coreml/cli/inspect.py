"""`snapfusion-coreml inspect`: what a converted folder or package holds."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import human_bytes, print_json, print_titled, stdout_console


def register(app: typer.Typer) -> None:
    app.command(name="inspect")(inspect_command)


def inspect_command(
    path: Path = typer.Argument(..., help="A converted folder or one .mlpackage"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Inputs, outputs, size, op counts, palettization and the pipeline.json summary."""
    from rich.table import Table
    from rich.text import Text

    from ..package_info import inspect_path

    info = inspect_path(path)
    console = stdout_console()
    if as_json:
        print_json(info)
        return
    if "pipeline" in info:
        p = info["pipeline"]
        console.print(Text(info["folder"], style="bold"), end="")
        console.print(f"  {human_bytes(info['size_bytes'])}  prediction {p['prediction_type']}, "
                      f"{p['image']['height']}x{p['image']['width']} px, UNet layout {p['unet_layout']}, {p['sampler']['name']} sampler, {p['sampler']['default_steps']} steps "
                      f"{p['sampler']['timesteps']} ({p['sampler']['unet_calls']} UNet evaluations per image), guidance {p['guidance']}", highlight=False)
        if p["sizes"]:
            listed = ", ".join(f"{s['image']['height']}x{s['image']['width']} ({s['function']})" for s in p["sizes"])
            console.print(f"sizes: {listed}; the first is the default", highlight=False)
        for key, component in p["components"].items():
            comp = component["compression"]
            if component["mixed_layers"]:
                layers = ", ".join(f"{b}-bit {n}" for b, n in component["mixed_bits_histogram"].items())
                console.print(f"{key}: mixed-bit recipe, {comp.get('bits')} average bits (target {comp.get('target_bits')}, "
                              f"{comp.get('method')}), {component['mixed_layers']} layers: {layers}; "
                              f"predicted PSNR {comp.get('predicted_psnr_db', float('nan')):.1f} dB", highlight=False)
    for pkg in info["packages"]:
        title = (f"{Path(pkg['path']).name}  {human_bytes(pkg['size_bytes'])}  {pkg['deployment_target']}  "
                 f"palettized {pkg['palettized_share']:.0%} (bits {pkg['palettized_bits'] or '-'}), "
                 f"average {pkg['average_bits']:.2f} bits/weight")
        table = Table()
        table.add_column("kind")
        table.add_column("name")
        table.add_column("shape")
        table.add_column("dtype")
        for kind in ("inputs", "outputs"):
            for t in pkg[kind]:
                table.add_row(kind[:-1], t["name"], str(tuple(t["shape"])), t["dtype"])
        print_titled(console, title, table)
        if len(pkg["functions"]) > 1:
            sides = ", ".join(f"{f['name']}{' (default)' if f['name'] == pkg['default_function'] else ''} "
                              f"{' '.join(str(tuple(t['shape'])) for t in f['inputs'] if len(t['shape']) == 4)}"
                              for f in pkg["functions"])
            console.print(f"functions: {sides}", highlight=False)
        ops = ", ".join(f"{k} {v}" for k, v in pkg["op_counts"].items())
        console.print(f"ops: {ops}", highlight=False)
