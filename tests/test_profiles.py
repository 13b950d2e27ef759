"""Profiles are data: all predefined ones load; bad ones fail with a one-line message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourkagent.errors import ProfileError
from fourkagent.profiles import DEFAULT_PROFILE, list_profiles, load_profile

EXPECTED = {
    "Gen4K-P", "Gen4K-F", "Aer4K-P", "Aer4K-F", "ExpSR-s4-P", "ExpSR-s4-F", "ExpSR-s2-F", "ExpSR-s8-F",
    "GenSR-s4-P", "AerSR-s4-P", "AerSR-s4-F", "GenMIR-P", "ExpSRFR-s4-P", "GenSRFR-s4-P", "FastGen4K-P", "OldP4K-P",
}


def test_every_predefined_profile_loads() -> None:
    names = {p.name for p in list_profiles()}
    assert names == EXPECTED
    for name in EXPECTED:
        assert load_profile(name).name == name
    assert load_profile(None).name == DEFAULT_PROFILE == "FastGen4K-P"
    assert load_profile(DEFAULT_PROFILE).fast4k is True


def test_names_are_case_and_separator_insensitive() -> None:
    assert load_profile("gen4k_p").name == "Gen4K-P"


def test_reference_yaml_keys_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "ref.yaml"
    f.write_text(
        "PerceptionAgent: depictqa\nUpscale4K: false\nScaleFactor: 4\nRestoreOption: denoising+dehazing\n"
        "FaceRestore: true\nBrightening: false\nRestorePerference: Fidelity\nReflection: hpsv2+metric\n"
    )
    p = load_profile(str(f))
    assert p.scale_factor == 4 and p.restore_option == ["denoising", "dehazing"]
    assert p.priority == "fidelity" and p.scorer == "paper" and p.perceiver == "vlm"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("scale_factor: 3\n", "scale_factor"),
        ("priority: sharpest\n", "priority"),
        ("restore_option: [denoising, teleport]\n", "restore_option"),
        ("upscale_to_4k: true\nbogus_key: 1\n", "bogus_key"),
        ("perception_agent: oracle\n", "perception_agent"),
    ],
)
def test_malformed_profile_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(str(f))
    msg = str(err.value)
    assert f"'{field}'" in msg and "\n" not in msg


def test_invalid_yaml_and_unknown_name(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(ProfileError, match="invalid YAML"):
        load_profile(str(f))
    with pytest.raises(ProfileError, match="unknown profile"):
        load_profile("NoSuchProfile")


def test_inline_profile_with_base() -> None:
    p = load_profile({"base": "ExpSR-s4-F", "scale_factor": 2, "name": "mine"})
    assert p.scale_factor == 2 and p.priority == "fidelity" and p.name == "mine"
