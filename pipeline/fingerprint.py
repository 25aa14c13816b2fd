"""What a night's results depend on besides the market data: the project's code and every
configuration file. `make demo` records it on its run and skips a repeat whose dataset, warehouse,
code and configuration are all unchanged, as the nightly schedule skips a night already published."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.settings import PROJECT_ROOT, Settings

# The code's files (not what runs write beside it: warehouse/ also holds the data and the pages).
CODE = ("pipeline/**/*.py", "pipeline/**/*.yaml", "pipeline/**/*.html", "assets/*.py", "warehouse/*.py",
        "warehouse/schema/*.sql")
SECRETS = {"coingecko_api_key", "coinmarketcap_api_key"}  # never part of what is hashed, let alone recorded


def fingerprint(settings: Settings) -> str:
    """A short hash of the CODE files, the configuration files the settings point at, and the
    settings themselves (API keys left out)."""
    digest = hashlib.sha256(settings.model_dump_json(exclude=SECRETS).encode())
    code = sorted(p for pattern in CODE for p in PROJECT_ROOT.glob(pattern))
    configs = [settings.universe_path, settings.analytics_path, settings.quality_path, settings.playbook_path,
               settings.portfolio_path]
    for path in [*code, *configs]:
        digest.update(str(path).encode())
        digest.update(Path(path).read_bytes() if Path(path).is_file() else b"(absent)")
    return digest.hexdigest()[:16]
