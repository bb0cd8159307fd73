"""voicebook.runner helpers used inside chapters (running a whole chapter is test_chapter0N.py)."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from voicebook.runner import load_metrics, pick_preset, preset_tag, save_metrics, to_ipynb

TABLE = {"smoke": {"epochs": 1, "utts": 8}, "standard": {"epochs": 20, "utts": 3000}}


def test_pick_preset_returns_a_copy():
    settings = pick_preset("smoke", TABLE)
    assert settings == {"epochs": 1, "utts": 8}
    settings["epochs"] = 99
    assert TABLE["smoke"]["epochs"] == 1  # the chapter's table is not modified


def test_overrides_replace_settings_and_get_their_own_checkpoint_folder():
    key = next(iter(TABLE["smoke"]))
    settings = pick_preset("smoke", TABLE, {key: "changed"})
    assert settings[key] == "changed" and TABLE["smoke"][key] != "changed"
    with pytest.raises(ValueError, match="not settings of preset 'smoke'"):
        pick_preset("smoke", TABLE, {"no_such_setting": 1})
    assert preset_tag("smoke") == preset_tag("smoke", {}) == "smoke"
    tag = preset_tag("smoke", {key: 1})
    assert tag.startswith("smoke-") and tag != preset_tag("smoke", {key: 2}) and tag == preset_tag("smoke", {key: 1})


def test_another_seed_or_corpus_gets_its_own_checkpoint_folder(tmp_path, monkeypatch):
    """A rerun with seed=1, or on a local corpus, must not resume models trained with seed 0 on
    the generated data (it used to stop with CheckpointError or, worse, reuse them)."""
    tags = {preset_tag("smoke"), preset_tag("smoke", seed=1), preset_tag("smoke", seed=2),
            preset_tag("smoke", data_dir=tmp_path / "a"), preset_tag("smoke", data_dir=tmp_path / "b"),
            preset_tag("smoke", {"steps": 3}, seed=1)}
    assert len(tags) == 6 and preset_tag("smoke", seed=0, data_dir=None) == "smoke"
    monkeypatch.chdir(tmp_path)  # a relative and an absolute path to one folder give one tag
    assert preset_tag("smoke", data_dir="a") == preset_tag("smoke", data_dir=tmp_path / "a")


def test_overrides_given_as_lists_get_the_presets_tuples_back():
    """papermill passes JSON: tuples arrive as lists; pick_preset restores them where the preset has them."""
    table = {"smoke": {"necks": [(2, 32), (32, 8)], "ablation": (32, 8), "steps": (60, 40), "names": ["a"], "lr": 1e-3}}
    got = pick_preset("smoke", table, json.loads(json.dumps(
        {"necks": [[16, 16]], "ablation": [16, 16], "steps": [1, 2], "names": ["b", "c"], "lr": [1, 2]})))
    # (16, 16) != [16, 16] in Python: the comparison checks every tuple and list
    assert got == {"necks": [(16, 16)], "ablation": (16, 16), "steps": (1, 2), "names": ["b", "c"], "lr": [1, 2]}


def test_pick_preset_unknown_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'paper': this chapter has smoke, standard"):
        pick_preset("paper", TABLE)


def test_save_load_metrics_round_trip(tmp_path):
    metrics = {"mcd_db": 3.04, "f0_rmse_hz": np.float32(23.5), "preset": "smoke", "n": 276, "ok": True}
    path = save_metrics(tmp_path / "out", metrics)
    assert path == tmp_path / "out" / "metrics.json"
    back = load_metrics(tmp_path / "out")
    assert back == {"mcd_db": 3.04, "f0_rmse_hz": 23.5, "preset": "smoke", "n": 276, "ok": True}
    assert json.loads(path.read_text()) == back
    save_metrics(tmp_path / "out", {"x": 1}, name="extra.json")
    assert load_metrics(tmp_path / "out", name="extra.json") == {"x": 1}
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == ["extra.json", "metrics.json"]


def test_load_metrics_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics\.json: the chapter did not write its metrics.*save_metrics"):
        load_metrics(tmp_path)


MYST = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Something else
  language: python
  name: some-other-kernel
---

# A tiny chapter

```{code-cell} python
:tags: [parameters]
preset = "smoke"
```

Some prose.

```{code-cell} python
print(1 + 1)
```
"""


def test_to_ipynb_writes_a_python3_kernelspec(tmp_path):
    src = tmp_path / "tiny.md"
    src.write_text(MYST)
    dest = to_ipynb(src, tmp_path / "sub" / "tiny.ipynb")
    assert dest == tmp_path / "sub" / "tiny.ipynb"
    nb = nbformat.read(dest, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert nb.metadata["language_info"]["name"] == "python"
    kinds = [c.cell_type for c in nb.cells]
    assert kinds == ["markdown", "code", "markdown", "code"]
    assert nb.cells[1].metadata["tags"] == ["parameters"]  # papermill finds its parameters cell
    assert nb.cells[3].source == "print(1 + 1)"


def test_save_metrics_writes_strict_json(tmp_path):
    """NaN (the spread of one seed) and inf become null: other tools' JSON parsers reject NaN."""
    path = save_metrics(tmp_path, {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": (2.0, float("nan"))}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": {"d": [2.0, None]}}


def test_command_line_parameters_are_json_or_strings(monkeypatch, tmp_path):
    from voicebook import runner

    calls = []
    monkeypatch.setattr(runner, "run_chapter", lambda nb, out, **kw: calls.append((nb, out, kw)) or {})
    runner.main(["ch.md", "--out", str(tmp_path), "--param", "n_seeds=1",
                 "--param", 'overrides={"steps": 5, "necks": [[2, 32]]}', "--param", "label=plain text"])
    (nb, out, kw), = calls
    assert out == tmp_path / "ch" and kw["preset"] == "smoke"
    assert kw["parameters"] == {"n_seeds": 1, "overrides": {"steps": 5, "necks": [[2, 32]]}, "label": "plain text"}
    with pytest.raises(SystemExit, match="NAME=JSON"):
        runner.main(["ch.md", "--param", "no-equals-sign"])
