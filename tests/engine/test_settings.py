"""Settings and the shared command-line flags."""

import argparse

import pytest

from app.settings import GIB, Settings, add_common_arguments


def parse(*argv):
    return Settings.from_args(add_common_arguments(argparse.ArgumentParser()).parse_args(list(argv)))


def test_flags_fill_settings(tmp_path):
    settings = parse("--base-directory", str(tmp_path), "--cpu", "--cache-ram", "2.5", "--lowvram",
                     "--vram-budget", "6", "--bf16", "--preview-method", "latent2rgb", "--disable-metadata",
                     "--debug-mutation-check", "--output-directory", str(tmp_path / "out"))
    assert settings.base_directory == tmp_path.resolve()
    assert settings.output_directory == (tmp_path / "out").resolve()
    assert (settings.cpu, settings.lowvram, settings.bf16, settings.disable_metadata) == (True, True, True, True)
    assert settings.cache_ram_gb == 2.5 and settings.vram_budget_gb == 6.0
    assert settings.preview_method == "latent2rgb" and settings.debug_mutation_check
    assert settings.cache_budget_bytes() == int(2.5 * GIB)
    assert settings.node_settings()["disable_metadata"] is True


def test_defaults_point_at_the_repository():
    settings = parse()
    assert (settings.base_directory / "main.py").is_file()
    assert not settings.cache_none and settings.preview_method == "auto"


def test_cache_flags_are_exclusive():
    with pytest.raises(SystemExit):
        parse("--cache-none", "--cache-ram", "1")


def test_default_cache_budget_follows_free_ram():
    settings = Settings()
    assert settings.cache_budget_bytes(available_ram=10 * GIB, total_ram=16 * GIB) == 8 * GIB
    assert settings.cache_budget_bytes(available_ram=100 * GIB, total_ram=128 * GIB) == 64 * GIB
    assert settings.cache_budget_bytes(available_ram=100, total_ram=1000) == 512 * 1024 * 1024
    assert Settings().cache_budget_bytes() > 0


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        Settings(preview_method="fancy")
    with pytest.raises(ValueError):
        Settings(cache_ram_gb=-1)
