"""``connecto demo --overwrite`` deletes only what the demo made."""

import pytest


def test_overwrite_deletes_only_a_directory_the_demo_made(tmp_path):
    from connecto.demo import DEMO_MARKER, prepare_output

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"home is not empty and was not made by connecto demo"):
            prepare_output(str(precious), overwrite=overwrite)
    assert (precious / "thesis.tex").read_text() == "years of work"
    made = tmp_path / "demo"
    prepare_output(str(made), overwrite=False)
    (made / "old-output").write_text("x")
    prepare_output(str(made), overwrite=True)
    assert sorted(p.name for p in made.iterdir()) == [DEMO_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_output(str(empty), overwrite=True)  # an empty directory is fine
    assert (empty / DEMO_MARKER).exists()
