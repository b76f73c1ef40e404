"""The README's mapping cookbook is code: every recipe must load as a valid mapping."""

from __future__ import annotations

import re
from pathlib import Path

from importer.mapping import compile_mapping, parse_yaml
from importer.payload import PayloadBuilder

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_cookbook_recipe_is_a_valid_mapping() -> None:
    text = README.read_text(encoding="utf-8")
    cookbook = text.split("## Mapping cookbook", 1)[1].split("\n## ", 1)[0]
    recipes = re.findall(r"```yaml\n(.*?)```", cookbook, re.S)
    assert len(recipes) == 5
    for recipe in recipes:
        PayloadBuilder(compile_mapping(parse_yaml(recipe)))


def test_polish_excel_recipe_on_a_cp1250_semicolon_export(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    cookbook = README.read_text(encoding="utf-8").split("## Mapping cookbook", 1)[1]
    (tmp_path / "m.yaml").write_text(re.findall(r"```yaml\n(.*?)```", cookbook, re.S)[1])
    (tmp_path / "in.csv").write_bytes(
        "telefon;e_mail;kwota;data;zgoda\r\n"
        "600 123 456;Łucja@Example.pl;1 234,50;26.11.2026;TAK\r\n"
        "0048600123457;jan@example.pl;12,3;2026-11-25;nie\r\n".encode("cp1250")
    )
    result = run_cli("validate", "in.csv", "--mapping", "m.yaml", "--encoding", "cp1250", "--show", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert '"customerPhone":"+48******456"' in first and '"customerEmail":"ł***@example.pl"' in first
    assert '{"name":"kwota","type":"Money","value":"1234.50"}' in first
    assert '{"name":"dataZamowienia","type":"Date","value":"2026-11-26"}' in first
    assert '{"name":"zgodaMarketingowa","type":"Boolean","value":"true"}' in first
    assert '"value":"12.30"' in second and '"value":"2026-11-25"' in second and '"value":"false"' in second
