import logging

from project.progress import Progress, duration


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 42, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_a_line_at_most_every_interval_and_one_at_the_end(caplog):
    """Done/total, the rate and the time left, from the work done so far; no line between intervals."""
    now = [0.0]
    caplog.set_level(logging.INFO)
    progress = Progress(logging.getLogger("t"), "the fill", 100, "image-views", every_s=20, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 5
        progress.advance(10)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "the fill: 40/100 image-views (2.00/s, 20 s so far, 30 s left)",
        "the fill: 80/100 image-views (2.00/s, 40 s so far, 10 s left)",
        "the fill: 100/100 image-views (2.00/s, 50 s so far, done)",
    ]


def test_no_estimate_before_any_time_has_passed(caplog):
    caplog.set_level(logging.INFO)
    progress = Progress(logging.getLogger("t"), "gates", 2, "images", every_s=0, clock=lambda: 0.0)
    progress.advance(0)
    assert caplog.records[-1].getMessage() == "gates: 0/2 images (0.00/s, 0 s so far, time left not known yet)"


def test_errors_are_counted_on_the_line_when_a_job_has_them(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    progress = Progress(logging.getLogger("t"), "tagging", 4, "sources", every_s=0, clock=lambda: now[0])
    now[0] = 1.0
    progress.advance(2, errors=1)
    assert caplog.records[-1].getMessage() == "tagging: 2/4 sources (2.00/s, 1 s so far, 1 s left), 1 errors"
