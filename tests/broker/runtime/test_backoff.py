from broker.runtime.backoff import Backoff


def test_delays_double_from_first_up_to_the_cap_and_reset() -> None:
    backoff = Backoff(first=0.1, cap=0.5)
    assert [round(backoff.next(), 6) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


def test_a_long_outage_stays_at_the_cap() -> None:
    backoff = Backoff(first=0.05, cap=2.0)
    for _ in range(10_000):
        delay = backoff.next()
    assert delay == 2.0
