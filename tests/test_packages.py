from pathlib import Path

import adapters
import bot
import engine
import storage

ROOT = Path(__file__).resolve().parents[1]


def test_project_packages_are_this_repository_not_pypi_namesakes() -> None:
    for module in (adapters, storage, bot, engine):
        assert Path(module.__file__).resolve().parent.parent == ROOT


def test_engine_does_not_import_the_bot() -> None:
    for path in (ROOT / "engine").glob("*.py"):
        text = path.read_text()
        for other in ("from bot", "import bot", "from storage", "from adapters"):
            assert other not in text, f"{path.name} imports {other}"
