"""The registry of shipped weights (``weights/registry.json``) and ``--weights NAME|PATH`` lookup."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsplit.console import stdout_console
from avsplit.errors import CheckpointError
from avsplit.files import atomic_path, json_text

REGISTRY_FILE = "registry.json"


def weights_dir() -> Path:
    """Where shipped weights live: ``$AVSPLIT_WEIGHTS_DIR``, else the ``weights/`` folder of the
    source tree this package was installed from (``pip install -e .``)."""
    env = os.environ.get("AVSPLIT_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    file: str
    sha256: str
    preset: str
    description: str = ""
    recipe: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    default: bool = False

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


def load_registry(directory: Path | None = None) -> list[RegisteredModel]:
    """The registered models, default first. A missing registry file means no shipped weights."""
    path = (directory or weights_dir()) / REGISTRY_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"unreadable weights registry ({exc})", path, "restore it from the repository") from exc
    default = data.get("default")
    models = [
        RegisteredModel(
            name=name,
            file=entry["file"],
            sha256=entry["sha256"],
            preset=entry.get("preset", ""),
            description=entry.get("description", ""),
            recipe=entry.get("recipe", ""),
            scores=entry.get("scores", {}),
            default=(name == default),
        )
        for name, entry in data.get("models", {}).items()
    ]
    return sorted(models, key=lambda m: (not m.default, m.name))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(spec: str | Path | None) -> Path:
    """Turn ``--weights NAME|PATH`` (None = the default shipped model) into a verified file path."""
    registry = load_registry()
    if spec is None:
        defaults = [m for m in registry if m.default]
        if not defaults:
            raise CheckpointError(
                "no default weights are registered", weights_dir() / REGISTRY_FILE,
                "pass --weights PATH to a checkpoint, or train one with `avsplit train`",
            )
        return _verified(defaults[0])
    for model in registry:
        if model.name == str(spec):
            return _verified(model)
    path = Path(spec)
    if path.exists():
        return path
    names = ", ".join(m.name for m in registry) or "none"
    raise CheckpointError(
        "is neither a checkpoint file nor a registered model name", path,
        f"give a .safetensors path or one of: {names} (see `avsplit models`)",
    )


def _verified(model: RegisteredModel) -> Path:
    path = model.path
    if not path.exists():
        raise CheckpointError(f"weights of {model.name!r} are missing", path, "restore the weights/ folder from the repository")
    actual = sha256_of(path)
    if actual != model.sha256:
        raise CheckpointError(
            f"weights of {model.name!r} are corrupt (sha256 {actual[:12]}..., expected {model.sha256[:12]}...)",
            path, "restore the file from the repository",
        )
    return path


def print_registry(as_json: bool = False) -> None:
    """The registry on stdout: one block per model (wrapped to the terminal, 80 columns when piped), or JSON."""
    import dataclasses
    import textwrap

    registry = load_registry()
    if as_json:
        entries = [{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(m).items()} for m in registry]
        sys.stdout.write(json_text(entries, indent=2) + "\n")
        return
    if not registry:
        stdout_console.print(f"No weights are registered yet ({weights_dir() / REGISTRY_FILE}).")
        return
    width = max(40, stdout_console.width)
    lines = []
    for m in registry:
        lines.append(m.name + (" (default)" if m.default else ""))
        lines.append(f"  preset: {m.preset}   file: {m.file}")
        lines.extend(textwrap.wrap(m.description, width, initial_indent="  ", subsequent_indent="  "))
        for k, v in m.scores.items():
            lines.extend(textwrap.wrap(f"{k}: {v}", width, initial_indent="  - ", subsequent_indent="    "))
        lines.append("")
    stdout_console.print("\n".join(lines).rstrip(), markup=False, highlight=False, soft_wrap=True)


def register_model(
    name: str,
    file: str | Path,
    *,
    preset: str,
    description: str = "",
    recipe: str = "",
    scores: dict[str, Any] | None = None,
    default: bool = False,
    directory: Path | None = None,
) -> RegisteredModel:
    """Add or replace an entry of ``weights/registry.json`` for a checkpoint inside the weights folder
    (its sha256 is computed here). Used by maintainers when shipping weights."""
    directory = directory or weights_dir()
    path = directory / REGISTRY_FILE
    data = json.loads(path.read_text()) if path.exists() else {"version": 1, "default": None, "models": {}}
    file = Path(file)
    if file.parent.resolve() != directory.resolve():
        raise CheckpointError("shipped weights must live in the weights folder", file, f"copy it into {directory}")
    data["models"][name] = {"file": file.name, "sha256": sha256_of(file), "preset": preset,
                            "description": description, "recipe": recipe, "scores": scores or {}}
    if default:
        data["default"] = name
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data, indent=2) + "\n")
    return next(m for m in load_registry(directory) if m.name == name)
