"""Edge bundles on the device side: read the manifest, check every file's sha256. No torch here.

A bundle is a folder: the model file(s), `tokenizer.json`, `config.json` (task, labels, pooling,
prefix, buckets, languages) and `manifest.json` (what it is — `"kind": "bundle"` and the bundle
format —, the sha256 of every file, the edgelm version, the export options, and a parity record:
real inputs with the source model's outputs). `write_manifest` (the exporter's last step) and
`Bundle.open` (the device's first) are the two sides of that format. The device trusts nothing it has
not hashed.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

from edgelm.errors import EdgelmError
from edgelm.hashing import sha256_file
from edgelm.version import __version__

BUNDLE_FORMAT = 1  # bump on incompatible changes; a device refuses bundles newer than it knows
MANIFEST = "manifest.json"


def is_bundle(path: str | Path) -> bool:
    return (Path(str(path)) / MANIFEST).is_file()


def write_manifest(folder: Path, *, export: dict, sizes: dict, parity: dict, nested: list[str] = ()) -> dict:
    """Hash every file in `folder` and write its manifest.json; return the manifest. `nested`: paths of inner
    bundles' manifests (a specialists bundle's experts), hashed too, so one check chains to every file."""
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(folder.iterdir())
             if p.name != MANIFEST and p.is_file()}
    files |= {name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size} for name in nested}
    manifest = {"kind": "bundle", "bundle_format": BUNDLE_FORMAT, "edgelm_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "export": export, "files": files, "sizes": sizes, "parity": parity}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    return manifest


@dataclass
class Bundle:
    """A verified bundle folder: its manifest and config."""

    path: Path
    manifest: dict
    config: dict

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> Bundle:
        """Read `path`; with `verify`, refuse missing, extra-sized or tampered files."""
        path = Path(path)
        manifest_file = path / MANIFEST
        if not manifest_file.is_file():
            raise EdgelmError(f"{path} is not an edgelm bundle (no manifest.json)")
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EdgelmError(f"{manifest_file} is corrupt (not JSON)") from None
        fmt = manifest.get("bundle_format")
        if not isinstance(fmt, int) or fmt > BUNDLE_FORMAT:
            raise EdgelmError(f"{path} is bundle format {fmt} from edgelm {manifest.get('edgelm_version')}; this "
                              f"edgelm reads format {BUNDLE_FORMAT}: upgrade edgelm on the device")
        if verify:
            for name, meta in manifest.get("files", {}).items():
                f = path / name
                if not f.is_file():
                    raise EdgelmError(f"bundle file {name} is missing from {path}")
                if f.stat().st_size != meta["bytes"]:
                    raise EdgelmError(f"bundle file {name} is {f.stat().st_size} bytes, the manifest says "
                                      f"{meta['bytes']}: truncated or replaced")
                if sha256_file(f) != meta["sha256"]:
                    raise EdgelmError(f"bundle file {name} fails its sha256 check: tampered or corrupt")
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return cls(path, manifest, config)

    @property
    def target(self) -> str:
        return self.manifest["export"]["target"]
