"""Pixel maps: pfflake.pixelmap and the pypff face, against pypff's own functions and tables."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake import pixelmap
from pfflake.pypff import pixelmap as face

BOARDS = ("bga", "qfp")
LOCS = [(c, k) for c in range(64) for k in range(4)]


@pytest.fixture(scope="module")
def oracle():
    return pytest.importorskip("pypff.pixelmap")


def test_tables_are_pypffs(oracle):
    import pypff

    assert face.maroc2phys_bga == pypff.maroc2phys_bga
    assert face.maroc2phys_qfp == pypff.maroc2phys_qfp
    assert face.phys2maroc_bga == pypff.phys2maroc_bga
    assert face.phys2maroc_qfp == pypff.phys2maroc_qfp
    assert (face.SRC_DIM, face.DST_DIM) == (oracle.SRC_DIM, oracle.DST_DIM)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("quabo", [0, 1, 3])
def test_every_pixel_as_pypff(oracle, board, quabo):
    for loc in LOCS:
        index = oracle.get_data_index(quabo, board, loc)
        assert face.get_data_index(quabo, board, loc) == index
        assert list(face.get_pixel_loc(quabo, board, index)) == list(loc)
    for index in range(256):
        assert face.get_pixel_loc(quabo, board, index) == list(
            oracle.get_pixel_loc(quabo, board, index)
        )


@pytest.mark.parametrize("board", BOARDS)
def test_quabo_2_is_turned_like_the_others(oracle, board):
    """pypff puts quabo 2 one row too far (indices 16..271); pfflake: the 90-degree turn."""
    ours = [face.get_data_index(2, board, loc) for loc in LOCS]
    theirs = [oracle.get_data_index(2, board, loc) for loc in LOCS]
    assert [t - 16 for t in theirs] == ours
    assert max(theirs) == 271 and sorted(ours) == list(range(256))
    for index in range(256):  # pypff's get_pixel_loc reads quabo 2 at row 16 - col
        row, col = divmod(index, 16)
        if col:
            assert face.get_pixel_loc(2, board, index) == list(
                oracle.get_pixel_loc(2, board, row * 16 + 16 - col)
            )
    # turning quabo 1's index map by 90 degrees gives quabo 2's, as 0 -> 1 and 2 -> 3 do
    tables = pixelmap.data_index_table(board)
    grids = []
    for q in range(4):
        g = np.full((16, 16, 64 * 4), 0)
        r, c = np.divmod(tables[q].reshape(-1), 16)
        g[r, c, np.arange(256)] = 1
        grids.append(g)
    for q in range(4):
        assert np.array_equal(np.rot90(grids[q], k=-1, axes=(0, 1)), grids[(q + 1) % 4])


@pytest.mark.parametrize("board", BOARDS)
def test_native_tables_are_inverse_permutations(board):
    idx = pixelmap.data_index_table(board)
    loc = pixelmap.pixel_loc_table(board)
    assert idx.shape == (4, 64, 4) and loc.shape == (4, 256, 2)
    for q in range(4):
        assert sorted(idx[q].reshape(-1).tolist()) == list(range(256))
        back = loc[q][idx[q].reshape(-1)]
        assert back.tolist() == [list(loc) for loc in LOCS]
    assert not idx.flags.writeable and not pixelmap.maroc_to_phys(board).flags.writeable
    assert pixelmap.maroc_to_phys(board).shape == (64, 4, 2)
    assert pixelmap.phys_to_maroc(board).shape == (16, 16, 2)


def test_bad_arguments():
    with pytest.raises(Exception, match="bga or qfp"):
        face.get_data_index(0, "xyz", (0, 0))
    with pytest.raises(ValueError, match=r"0\.\.3"):
        pixelmap.data_index(4, "bga", (0, 0))
    with pytest.raises(IndexError):
        pixelmap.pixel_loc(0, "bga", 256)


def test_tables_ship_with_their_notice():
    from importlib import resources

    data = resources.files("pfflake").joinpath("data")
    assert "MIT License" in data.joinpath("LICENSE-pypff-MIT.txt").read_text()
    assert "pypff" in data.joinpath("pixelmaps.json").read_text()[:300]
