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


def test_dependency_rule_adapters_then_bot_then_storage() -> None:
    forbidden = {
        # adapters reach the database only through the core (bot), never storage directly
        "adapters": ("from storage", "import storage"),
        "bot": ("from adapters", "import adapters"),
        "storage": ("from bot", "from adapters"),
    }
    for package, imports in forbidden.items():
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            for other in imports:
                assert other not in text, f"{path.relative_to(ROOT)} imports {other}"


def test_adapter_modules_never_shadow_their_libraries() -> None:
    names = {p.stem for p in (ROOT / "adapters").iterdir()}
    assert not names & {"slack_bolt", "slack_sdk", "discord", "slack"}
