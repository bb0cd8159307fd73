"""Tests of voicebook.losses (chapter 1): each loss against an independent, written-out computation."""

import math

import pytest
import torch

from voicebook import losses


# ---------------------------------------------------------------- GE2E (Wan et al. 2018)


def ge2e_by_loops(e: torch.Tensor, w: float, b: float) -> torch.Tensor:
    """The GE2E softmax loss, summed (eq. 10), straight from the paper with explicit loops."""
    n, m, _ = e.shape
    total = e.new_zeros(())
    for j in range(n):
        for i in range(m):
            logits = []
            for k in range(n):
                if k == j:  # eq. 8: own centroid without utterance i
                    c = sum(e[j, q] for q in range(m) if q != i) / (m - 1)
                else:
                    c = sum(e[k, q] for q in range(m)) / m
                cos = torch.dot(e[j, i], c) / (e[j, i].norm() * c.norm())
                logits.append(w * cos + b)  # eq. 9
            logits = torch.stack(logits)
            total = total - logits[j] + torch.log(torch.exp(logits).sum())  # eq. 6
    return total


@pytest.mark.parametrize("n,m,d", [(2, 2, 3), (3, 4, 5), (5, 3, 8)])
def test_ge2e_matches_loops(n, m, d):
    g = torch.Generator().manual_seed(n * 100 + m)
    e = torch.randn(n, m, d, generator=g, dtype=torch.float64)
    w, b = torch.tensor(7.3, dtype=torch.float64), torch.tensor(-2.1, dtype=torch.float64)
    expected = ge2e_by_loops(e, 7.3, -2.1)
    assert torch.allclose(losses.ge2e_loss(e, w, b, reduction="sum"), expected, atol=1e-10)
    assert torch.allclose(losses.ge2e_loss(e, w, b), expected / (n * m), atol=1e-10)


def test_ge2e_gradients_match_loops():
    g = torch.Generator().manual_seed(3)
    e1 = torch.randn(3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    e2 = e1.detach().clone().requires_grad_(True)
    w = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    losses.ge2e_loss(e1, w, b, reduction="sum").backward()
    ge2e_by_loops(e2, 5.0, -1.0).backward()
    assert torch.allclose(e1.grad, e2.grad, atol=1e-10)
    assert w.grad is not None and b.grad is not None and w.grad.abs() > 0


def test_ge2e_known_answer_orthogonal_speakers():
    """Every utterance of speaker j points along axis j: cos = 1 to its own centroid, 0 to the
    others, so L(e_ji) = -(w + b) + log(e^(w+b) + (N-1) e^b) = log(1 + (N-1) e^-w)."""
    n, m, w, b = 4, 3, 10.0, -5.0
    lengths = torch.rand(n, m, 1, dtype=torch.float64) + 0.5  # any positive lengths
    e = torch.eye(n, dtype=torch.float64)[:, None, :].repeat(1, m, 1) * lengths
    w_, b_ = torch.tensor(w, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    loss = losses.ge2e_loss(e, w_, b_)
    assert loss.item() == pytest.approx(math.log(1 + (n - 1) * math.exp(-w)), rel=1e-9)
    wrong = e.clone()
    wrong[0, 0] = e[1, 0]  # one utterance of speaker 0 sounds like speaker 1: the loss grows
    assert losses.ge2e_loss(wrong, w_, b_) > 100 * loss


def test_ge2e_excludes_own_utterance_from_its_centroid():
    """Speaker 0's utterance 0 is an outlier. With the exclusive centroid its similarity to its own
    speaker is that to the other utterance only: cos(e00, e01)."""
    e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [-1.0, 0.1]]])
    s = losses.ge2e_similarity(e, torch.tensor(1.0), torch.tensor(0.0))
    assert s[0, 0, 0].item() == pytest.approx(0.0, abs=1e-6)  # cos((1,0), (0,1)), not cos with (0.5, 0.5)
    assert s.shape == (2, 2, 2)


def test_ge2e_w_is_kept_positive_and_bad_shapes_raise():
    e = torch.randn(3, 2, 4)
    neg = losses.ge2e_similarity(e, torch.tensor(-3.0), torch.tensor(0.5))
    assert torch.allclose(neg, torch.full_like(neg, 0.5), atol=1e-5)  # w clamped to ~0
    with pytest.raises(ValueError, match="2 utterances"):
        losses.ge2e_loss(torch.randn(3, 1, 4), torch.tensor(1.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="speakers, utterances, dim"):
        losses.ge2e_loss(torch.randn(6, 4), torch.tensor(1.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="reduction"):
        losses.ge2e_loss(e, torch.tensor(1.0), torch.tensor(0.0), reduction="none")


# ---------------------------------------------------------------- AutoVC and CycleAutoVC


def test_autovc_loss_hand_computed():
    mel = torch.zeros(1, 2, 2)
    mel_out = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])        # MSE 0.5
    mel_post = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])       # MSE 1.0
    codes = torch.tensor([[[1.0, 2.0]]])
    codes_recon = torch.tensor([[[1.5, 1.0]]])                # L1 0.75
    loss, parts = losses.autovc_loss(mel, mel_out, mel_post, codes, codes_recon, lambda_cont=2.0)
    assert loss.item() == pytest.approx(0.5 + 1.0 + 2.0 * 0.75)
    assert {k: v.item() for k, v in parts.items()} == pytest.approx({"recon": 0.5, "recon_postnet": 1.0, "cont": 0.75})


def test_cycle_encoding_style_losses_hand_computed():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    back = torch.tensor([[[1.0, 0.0], [3.0, 5.0]]])           # squared errors 0, 4, 0, 1 -> 1.25
    back_pre = torch.tensor([[[0.0, 2.0], [3.0, 4.0]]])       # 1, 0, 0, 0 -> 0.25
    assert losses.cycle_loss(x, back).item() == pytest.approx(1.25)
    assert losses.cycle_loss(x, back, back_pre).item() == pytest.approx(1.5)
    c_src, c_conv = torch.tensor([[[0.0, 1.0, -1.0]]]), torch.tensor([[[0.5, 1.0, 1.0]]])
    assert losses.encoding_loss(c_src, c_conv).item() == pytest.approx((0.5 + 0 + 2) / 3)
    e_conv, e_tgt = torch.tensor([[0.6, 0.8], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert losses.style_loss(e_conv, e_tgt).item() == pytest.approx((0.6 + 0.2) / 4)

    total, parts = losses.cycle_autovc_loss(x, back, c_src, c_conv, e_conv, e_tgt, lambda_encod=10.0)
    assert total.item() == pytest.approx(1.25 + 0.2 + 10 * 2.5 / 3)
    assert set(parts) == {"cycle", "encod", "style"}
    no_style, parts = losses.cycle_autovc_loss(x, back, c_src, c_conv, lambda_encod=10.0, use_style=False)
    assert no_style.item() == pytest.approx(1.25 + 10 * 2.5 / 3) and "style" not in parts
    with pytest.raises(ValueError, match="emb_converted"):
        losses.cycle_autovc_loss(x, back, c_src, c_conv, use_style=True)


def test_losses_send_gradients_where_they_should():
    """The style loss treats the target embedding as a constant; the encoding loss moves both codes."""
    e_conv = torch.randn(2, 4, requires_grad=True)
    e_tgt = torch.randn(2, 4, requires_grad=True)
    losses.style_loss(e_conv, e_tgt).backward()
    assert e_conv.grad is not None and e_conv.grad.abs().sum() > 0 and e_tgt.grad is None
    c_src = torch.randn(1, 3, 2, requires_grad=True)
    c_conv = torch.randn(1, 3, 2, requires_grad=True)
    losses.encoding_loss(c_src, c_conv).backward()
    assert c_src.grad.abs().sum() > 0 and c_conv.grad.abs().sum() > 0
