"""The progress bar: drawn in place on a terminal, silent elsewhere, and out of the way of
lines printed while it is up."""

import io

from dpo.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(3, "dpo", stream=stream) as bar:
        bar.update(loss=0.5)
        bar.clear()
    assert stream.getvalue() == ""


def test_drawn_in_place_on_a_terminal():
    stream = Terminal()
    with Progress(4, "dpo", stream=stream, width=4) as bar:
        bar.update(loss=0.25)
        bar.update(loss=0.125)
    text = stream.getvalue()
    frames = text.split("\r")[1:]
    assert [frame.split(" it/s")[0].rsplit(" ", 1)[0] for frame in frames] == ["dpo [#...] 1/4", "dpo [##..] 2/4"]
    assert frames[-1].endswith("loss 0.125\033[K\n")  # close() moves to the next line


def test_clear_erases_the_bar_before_a_printed_line():
    stream = Terminal()
    with Progress(2, "sft", stream=stream) as bar:
        bar.update(loss=1.0)
        bar.clear()
        stream.write("a line of my own\n")
        bar.clear()  # nothing to erase now
        bar.update(loss=0.5)
    text = stream.getvalue()
    assert "\r\033[Ka line of my own\n\rsft [" in text
    assert text.count("\r\033[K") == 1
    assert text.endswith("\n")
