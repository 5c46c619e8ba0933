"""Writing .mlpackage folders reproducibly: the same model, options and versions give the same bytes.

coremltools' `MLModel.save` gives each package item a random UUID in Manifest.json, serialises
the protobuf spec with its map fields (the metadata) in hash order and stamps the conversion date
into the metadata, so converting one model twice gave different packages and different sha256s in
pipeline.json. Here the package is written directly, in Apple's layout:

    NAME.mlpackage/Manifest.json                            items and the root model's identifier
    NAME.mlpackage/Data/com.apple.CoreML/model.mlmodel      the spec, deterministically serialised
    NAME.mlpackage/Data/com.apple.CoreML/weights/weight.bin the weights, copied byte for byte

Item identifiers are UUIDs derived from the item's path and content (uuid5), so they are fixed
for fixed content and differ between different models. No dates and no paths go into a package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

from ..digests import tree_sha256

MANIFEST_FILE = "Manifest.json"
DATA_DIR = Path("Data") / "com.apple.CoreML"
SPEC_FILE = "model.mlmodel"
WEIGHTS_DIR = "weights"
# metadata coremltools writes that changes from run to run without the model changing
VOLATILE_METADATA = ("com.github.apple.coremltools.conversion_date",)
# uuid5 namespace of package items (a fixed, arbitrary UUID: only its constancy matters)
_ITEM_NAMESPACE = uuid.UUID("5f0c1a52-3b8e-4c61-9d2a-8e7f4b6a0c13")


def save_package(mlmodel, path: Path) -> None:
    """Write an ML program `mlmodel` (from ct.convert or a compression pass) to `path` (.mlpackage)."""
    weights = Path(mlmodel.weights_dir) if mlmodel.weights_dir else None
    write_package(mlmodel.get_spec(), weights, Path(path))


def read_spec(package: Path):
    """The model spec of a package this module's layout (or coremltools') wrote."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((Path(package) / DATA_DIR / SPEC_FILE).read_bytes())
    return spec


def rewrite_package(src: Path, dest: Path, edit=None) -> None:
    """Write the package `src` (e.g. saved by coremltools) to `dest` reproducibly; `edit(spec)`
    may change the model spec first (e.g. the metadata save_multifunction does not carry)."""
    src = Path(src)
    spec = read_spec(src)
    if edit is not None:
        edit(spec)
    weights = src / DATA_DIR / WEIGHTS_DIR
    write_package(spec, weights if weights.is_dir() else None, Path(dest))


def write_package(spec, weights_dir: Path | None, path: Path) -> None:
    """The package folder at `path` (which must not exist) from a spec and its weights folder."""
    for key in VOLATILE_METADATA:
        if key in spec.description.metadata.userDefined:
            del spec.description.metadata.userDefined[key]
    data = path / DATA_DIR
    data.mkdir(parents=True)
    # 1. the spec, with map fields in sorted order
    spec_bytes = spec.SerializeToString(deterministic=True)
    (data / SPEC_FILE).write_bytes(spec_bytes)
    items = {_item_id(SPEC_FILE, hashlib.sha256(spec_bytes).hexdigest()):
             _item("CoreML Model Specification", SPEC_FILE)}
    root = next(iter(items))
    # 2. the weights, byte for byte
    if weights_dir is not None and weights_dir.is_dir():
        for file in sorted(p for p in weights_dir.rglob("*") if p.is_file()):
            target = data / WEIGHTS_DIR / file.relative_to(weights_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)  # a full disk raises ENOSPC here, not a collected shutil.Error
        items[_item_id(WEIGHTS_DIR, tree_sha256(data / WEIGHTS_DIR))] = _item("CoreML Model Weights", WEIGHTS_DIR)
    # 3. the manifest, last
    manifest = {"fileFormatVersion": "1.0.0", "itemInfoEntries": dict(sorted(items.items())),
                "rootModelIdentifier": root}
    (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def _item_id(name: str, content_sha256: str) -> str:
    return str(uuid.uuid5(_ITEM_NAMESPACE, f"{name}:{content_sha256}"))


def _item(description: str, name: str) -> dict[str, str]:
    return {"author": "com.apple.CoreML", "description": description, "name": name,
            "path": f"com.apple.CoreML/{name}"}
