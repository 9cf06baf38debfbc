"""convae.progress: the "N of M, time left" line of make grade."""
from convae.progress import Progress, duration


def test_duration_reads_like_a_person_would_say_it():
    assert [duration(s) for s in (0, 42.4, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_progress_counts_and_estimates_the_time_left_from_the_mean_so_far():
    now = [100.0]
    progress = Progress(4, "graded", clock=lambda: now[0])
    now[0] = 130.0
    assert progress.step() == "graded 1 of 4, 30 s elapsed, about 1 min 30 s left"
    now[0] = 160.0
    assert progress.step() == "graded 2 of 4, 1 min 00 s elapsed, about 1 min 00 s left"
    progress.step()
    assert progress.step() == "graded 4 of 4, 1 min 00 s elapsed"
