"""`pfflake demo` builds its lake and finds exactly the injected coincident flashes."""

from rich.console import Console

from pfflake.demo import FLASH_FRAMES, run_demo


def test_demo_end_to_end(tmp_path):
    console = Console(file=open(tmp_path / "out.txt", "w"), width=160)  # noqa: SIM115
    result = run_demo(tmp_path / "demo", console=console, workers=1)
    assert result.coincidences == len(FLASH_FRAMES)
    assert len(result.pngs) == 6
    frames = sorted({int(p.stem.rsplit("frame", 1)[1]) for p in result.pngs})
    assert frames == sorted(FLASH_FRAMES)
    assert result.light_curve_csv.read_text().count("\n") > 100
    assert result.light_curve_png.read_bytes()[:4] == b"\x89PNG"
    again = run_demo(tmp_path / "demo", console=console, workers=1)  # rebuilds in place
    assert again.coincidences == len(FLASH_FRAMES)
