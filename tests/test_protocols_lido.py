"""Lido math: APR from share rates, the 10 % fee, the withdrawal queue and slashing (protocol_math.md §3)."""

from __future__ import annotations

import math

import pytest

from protocols import lido


def test_user_apr_from_share_rate_change() -> None:
    pre = 1.18
    post = pre * (1 + 0.03 / 365)
    assert lido.user_apr_from_share_rates(pre, post, 86_400) == pytest.approx(0.03)
    assert lido.user_apr_from_share_rates(pre, pre * 0.999, 86_400) < 0


def test_protocol_fee_is_ten_percent_and_waived_on_losses() -> None:
    assert lido.user_apr_from_protocol_apr(0.033) == pytest.approx(0.0297)
    assert lido.user_apr_from_protocol_apr(-0.01) == -0.01
    with pytest.raises(ValueError, match="fee"):
        lido.user_apr_from_protocol_apr(0.03, fee=1.0)


def test_rebase_is_the_inverse_of_the_apr_formula() -> None:
    post = lido.post_rebase_share_rate(1.2, 0.033, 86_400)
    assert lido.user_apr_from_share_rates(1.2, post, 86_400) == pytest.approx(0.0297)
    assert lido.share_rate(9_300_000, 9_300_000 / 1.2) == pytest.approx(1.2)


def test_sma_and_consensus_ceiling() -> None:
    assert lido.sma_apr([0.028, 0.030, 0.032]) == pytest.approx(0.030)
    assert lido.consensus_apr_ceiling(30e6) == pytest.approx(0.0304, abs=2e-4)
    assert lido.consensus_apr_ceiling(34e6) == pytest.approx(0.0285, abs=2e-4)
    with pytest.raises(ValueError, match="aprs"):
        lido.sma_apr([])


def test_withdrawal_wait_matches_lidos_published_ranges() -> None:
    # buffer covers the queue: finalised at the next daily report
    assert lido.withdrawal_wait_seconds(10, 1_000, 5_000, 3_600) == 3_600
    # no buffer, small request: 3-8 days
    small = lido.withdrawal_wait_seconds(500, 0, 0, 3_600) / 86_400
    assert 3 <= small <= 8
    # > 100k stETH behind an exit-queue backlog: about two weeks
    big = (
        lido.withdrawal_wait_seconds(100_000, 20_000, 0, 3_600, beacon_exit_queue_eth=400_000)
        / 86_400
    )
    assert 12 <= big <= 16
    # bunker mode adds ~14 frames
    assert lido.withdrawal_wait_seconds(10, 0, 100, 0, bunker=True) == 14 * 86_400


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 0, 0, 0), "request_eth"),
        ((1, -1, 0, 0), "queue_eth"),
        ((1, 0, 0, 90_000), "seconds_to_next_report"),
        ((math.nan, 0, 0, 0), "request_eth"),
    ],
)
def test_withdrawal_wait_rejects_impossible_input(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        lido.withdrawal_wait_seconds(*args)


def test_slashing_loss_fraction() -> None:
    # one isolated Electra slashing: 32 ETH * (1/4096 + 3*32/34M + 0.003) over 9.3M stETH
    expected = 32 * (1 / 4096 + 3 * 32 / 34e6 + 0.003) / 9.3e6
    assert lido.slashing_loss_fraction(1, 9.3e6, 34e6) == pytest.approx(expected)
    # correlated: a third of all stake slashed wipes the slashed validators out
    assert lido.slashing_loss_fraction(
        100, 9.3e6, 34e6, recently_slashed_eth=12e6
    ) == pytest.approx(3200 / 9.3e6)
    assert lido.slashing_loss_fraction(1, 9.3e6, 34e6, electra=False) > lido.slashing_loss_fraction(
        1, 9.3e6, 34e6
    )
    with pytest.raises(ValueError, match="slashed_validators"):
        lido.slashing_loss_fraction(-1, 9.3e6, 34e6)
    with pytest.raises(ValueError, match="exceeds total_lst_eth"):
        lido.slashing_loss_fraction(1000, 100.0, 34e6)
