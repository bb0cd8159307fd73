"""The papers' losses, grouped by paper, each naming the equation it implements.

Shapes: a mel batch is ``(batch, frames, n_mels)``; AutoVC's content codes are ``(batch,
frames // freq, 2 * dim_neck)``; speaker embeddings are ``(batch, dim)``. Every loss returns a
scalar tensor (a mean over its elements unless said otherwise), so that learning rates do not
depend on the batch size. "L2" losses are mean squared errors and "L1" losses mean absolute
errors, as in the papers' reference code (AutoVC's ``F.mse_loss`` / ``F.l1_loss``).

Chapter 1 (Godey & Boudin, *Cycle-consistent auto-encoder for few-shot voice conversion*):

- :func:`ge2e_similarity`, :func:`ge2e_loss`: the speaker encoder's GE2E loss (section 3.2;
  Wan et al. 2018, eqs. 6, 8, 9, 10);
- :func:`autovc_loss`: AutoVC's ``L = L_recon + lambda_cont L_cont`` (section 3.3);
- :func:`cycle_loss`, :func:`encoding_loss`, :func:`style_loss` and their sum
  :func:`cycle_autovc_loss`: CycleAutoVC's ``L = L_cycle + L_style + lambda_encod L_encod``
  (section 4.3).

Chapter 2 (Ferro, Obin & Roebel, *SoftGAN*): envelope images are ``(batch, K, bands,
frames)`` for K independent copies of a network trained side by side
(:mod:`voicebook.models.cyclegan_vc`), discriminator scores ``(batch, K)``. These losses
return one value per copy, ``(K,)``, a mean over everything else; the training step sums
them, so each copy's gradient is exactly that of its own loss.

- :func:`lsgan_loss`: least-squares adversarial loss (Mao et al. 2017), the paper's choice;
- :func:`soft_fake_label`, :func:`soft_real_label`: SoftGAN's targets (section 3.2, eqs. 6-7);
- :func:`l1_per_copy`: the cycle (eq. 3) and identity (eq. 4) terms;
- :func:`energy_loss`: the energy constraint (section 3.3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .fp32 import at_least_fp32, no_autocast

__all__ = ["ge2e_similarity", "ge2e_loss", "autovc_loss", "cycle_loss", "encoding_loss", "style_loss",
           "cycle_autovc_loss", "RHO_GEN", "RHO_DIS", "lsgan_loss", "soft_fake_label", "soft_real_label",
           "l1_per_copy", "frame_energy", "energy_loss", "separation_loss"]


# ============================================================================ chapter 1
# Godey & Boudin: GE2E speaker encoder (3.2), AutoVC (3.3), CycleAutoVC (4.3)

def _check_ge2e(embeddings: torch.Tensor) -> None:
    if embeddings.dim() != 3:
        raise ValueError(f"GE2E needs embeddings of shape (speakers, utterances, dim), got {tuple(embeddings.shape)}")
    n, m, _ = embeddings.shape
    if n < 2 or m < 2:
        raise ValueError(f"GE2E needs at least 2 speakers and 2 utterances each, got {n} x {m}: "
                         "with one utterance the exclusive centroid (eq. 8) is undefined")


def ge2e_similarity(embeddings: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The GE2E similarity matrix ``S[j, i, k]`` (Wan et al. 2018, eq. 9, with eq. 8).

    ``embeddings``: ``(speakers N, utterances M, dim)``, e_ji the embedding of utterance i of
    speaker j (need not be normalised: cosine similarity is used). Centroids
    ``c_k = mean_i e_ki``, except that utterance i is compared with its *own* speaker's
    centroid without itself, ``c_j^(-i) = (sum_m e_jm - e_ji) / (M - 1)`` (eq. 8), so a lone
    utterance cannot be close to its centroid just by being part of it. Then

        S[j, i, k] = w cos(e_ji, c_j^(-i)) + b   if k == j
                     w cos(e_ji, c_k)      + b   otherwise          (eq. 9)

    ``w`` (scale) is kept positive (clamped at 1e-6, as the paper constrains ``w > 0``), ``b``
    is the bias; both are learnable scalars. Returns ``(N, M, N)``.
    """
    _check_ge2e(embeddings)
    n, m, _ = embeddings.shape
    total = embeddings.sum(dim=1)                                     # (N, dim)
    centroids = total / m                                             # c_k, (N, dim)
    exclusive = (total[:, None, :] - embeddings) / (m - 1)            # c_j^(-i), (N, M, dim)
    e = F.normalize(embeddings, dim=-1)
    cos = e @ F.normalize(centroids, dim=-1).T                        # (N, M, N): cos(e_ji, c_k)
    own = (e * F.normalize(exclusive, dim=-1)).sum(-1)                # (N, M): cos(e_ji, c_j^(-i))
    same = torch.eye(n, dtype=torch.bool, device=embeddings.device)[:, None, :].expand(n, m, n)
    cos = torch.where(same, own[:, :, None].expand(n, m, n), cos)
    return w.clamp_min(1e-6) * cos + b


def ge2e_loss(embeddings: torch.Tensor, w: torch.Tensor, b: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Generalised end-to-end loss, softmax variant (Wan et al. 2018, eqs. 6 and 10).

    ``L(e_ji) = -S[j,i,j] + log sum_k exp(S[j,i,k])`` (eq. 6): cross-entropy of "which speaker
    said utterance ji" with logits ``S[j, i, :]`` from :func:`ge2e_similarity`.
    ``reduction="sum"`` gives the paper's total ``L_G = sum_ji L(e_ji)`` (eq. 10); the default
    ``"mean"`` divides it by ``N * M`` so the learning rate does not depend on the batch shape.

    ``embeddings``: ``(speakers N, utterances M, dim)``; ``w``, ``b``: learnable scalars.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    with no_autocast(embeddings.device.type):                        # fp32: w >= 10 scales bf16's rounding
        s = ge2e_similarity(*map(at_least_fp32, (embeddings, w, b)))  # (N, M, N)
    n, m, _ = s.shape
    target = torch.arange(n, device=s.device).repeat_interleave(m)    # speaker j of row (j, i)
    return F.cross_entropy(s.reshape(n * m, n), target, reduction=reduction)


def autovc_loss(mel: torch.Tensor, mel_out: torch.Tensor, mel_postnet: torch.Tensor, codes: torch.Tensor,
                codes_recon: torch.Tensor, lambda_cont: float = 1.0) -> tuple[torch.Tensor, dict]:
    """AutoVC's training loss ``L = L_recon + lambda_cont L_cont`` (section 3.3; Qian et al. 2019, section 3).

    ``L_recon = ||C(X_A, A) - X_A||^2``, taken, as in AutoVC, on both the decoder's output
    ``mel_out`` and the post-net's ``mel_postnet`` (MSE each, summed);
    ``L_cont = ||E_c(C(X_A, A)) - E_c(X_A)||_1``: ``codes`` are the content codes of the input
    ``mel``, ``codes_recon`` those of the reconstruction ``mel_postnet`` (mean absolute error).

    Mels: ``(batch, frames, n_mels)``; codes: ``(batch, frames // freq, 2 dim_neck)``.
    Returns ``(loss, {"recon", "recon_postnet", "cont"})`` (the parts detached, for logging).
    """
    recon = F.mse_loss(mel_out, mel)
    recon_postnet = F.mse_loss(mel_postnet, mel)
    cont = F.l1_loss(codes_recon, codes)
    loss = recon + recon_postnet + lambda_cont * cont
    return loss, {"recon": recon.detach(), "recon_postnet": recon_postnet.detach(), "cont": cont.detach()}


def cycle_loss(mel: torch.Tensor, mel_back: torch.Tensor, mel_back_pre: torch.Tensor | None = None) -> torch.Tensor:
    """``L_cycle(X_A, B) = ||C(C(X_A, B), A) - X_A||_2`` (section 4.3), as a mean squared error.

    ``mel``: the source ``X_A``; ``mel_back``: the back-conversion ``C(C(X_A, B), A)`` (post-net
    output), both ``(batch, frames, n_mels)``. If ``mel_back_pre`` (the decoder's output before
    the post-net) is given, its MSE is added too, as AutoVC's ``L_recon`` does, so that the
    decoder gets a direct signal.
    """
    loss = F.mse_loss(mel_back, mel)
    if mel_back_pre is not None:
        loss = loss + F.mse_loss(mel_back_pre, mel)
    return loss


def encoding_loss(codes_source: torch.Tensor, codes_converted: torch.Tensor) -> torch.Tensor:
    """``L_encod(X_A, B) = ||E_cont(C(X_A, B)) - E_cont(X_A)||_1`` (section 4.3), mean absolute error.

    ``codes_source``: content codes of ``X_A``; ``codes_converted``: of the conversion
    ``C(X_A, B)``; both ``(batch, frames // freq, 2 dim_neck)``.
    """
    return F.l1_loss(codes_converted, codes_source)


def style_loss(emb_converted: torch.Tensor, emb_target: torch.Tensor) -> torch.Tensor:
    """``L_style(X_A, B) = ||E_sty(C(X_A, B)) - E_sty(B)||_1`` (section 4.3), mean absolute error.

    ``emb_converted``: the speaker encoder's embedding of the conversion, ``(batch, dim)``;
    ``emb_target``: the target speaker's embedding ``E_sty(B)``, ``(batch, dim)``, a constant
    (detached here). The speaker encoder itself stays frozen: that is the caller's model's job
    (:class:`voicebook.models.cycle_autovc.CycleAutoVC` sets ``requires_grad=False`` on it), so
    the gradient flows through the encoder into the converted mel, never into its weights.
    """
    return F.l1_loss(emb_converted, emb_target.detach())


def cycle_autovc_loss(mel: torch.Tensor, mel_back: torch.Tensor, codes_source: torch.Tensor,
                      codes_converted: torch.Tensor, emb_converted: torch.Tensor | None = None,
                      emb_target: torch.Tensor | None = None, *, lambda_encod: float = 1.0,
                      use_style: bool = True, mel_back_pre: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """CycleAutoVC's loss ``L = L_cycle + L_style + lambda_encod L_encod`` (section 4.3).

    ``use_style=False`` drops ``L_style`` (phase 1 of section 5.2, and the ablation of 5.2.1);
    then ``emb_converted`` and ``emb_target`` may be None. Arguments as in :func:`cycle_loss`,
    :func:`encoding_loss`, :func:`style_loss`. Returns ``(loss, {"cycle", "encod"[, "style"]})``.
    """
    cyc = cycle_loss(mel, mel_back, mel_back_pre)
    enc = encoding_loss(codes_source, codes_converted)
    loss = cyc + lambda_encod * enc
    parts = {"cycle": cyc.detach(), "encod": enc.detach()}
    if use_style:
        if emb_converted is None or emb_target is None:
            raise ValueError("use_style=True needs emb_converted and emb_target")
        sty = style_loss(emb_converted, emb_target)
        loss = loss + sty
        parts["style"] = sty.detach()
    return loss, parts


# ============================================================================ chapter 2
# Ferro, Obin & Roebel: SoftGAN labels (3.2), energy constraint (3.3), CycleGAN-VC terms (eqs. 3-4)

RHO_GEN = 0.1   # section 3.2: how far the discriminator's target for a fake moves towards 0
RHO_DIS = 0.9   # section 3.2: how far the generator's target moves towards 1


def _per_copy(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but dim 1 (the copies): ``(batch, K, ...) -> (K,)``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1).mean(dim=1)


def lsgan_loss(scores: torch.Tensor, target) -> torch.Tensor:
    """LSGAN: ``mean (D(.) - target)^2`` per copy. ``scores`` ``(batch, K)``; ``target`` a number
    or a tensor of the same shape (a label: it should carry no gradient). -> ``(K,)``."""
    return _per_copy((scores - target) ** 2)


def soft_fake_label(d_fake: torch.Tensor, rho_gen: float = RHO_GEN) -> torch.Tensor:
    """Eq. 6: the discriminator's target for a generated sample, ``D(G(x)) + rho_gen (0 - D(G(x)))
    = (1 - rho_gen) D(G(x))`` instead of the hard 0.

    Detached: it is a label, computed from D's current opinion, not a path for gradients. With
    LSGAN the gradient of ``(d - label)^2`` is then ``2 rho_gen d``: D is pushed towards calling
    the fake fake with ``rho_gen`` (0.1) times the force of the hard label ``2 d``.
    """
    return ((1.0 - rho_gen) * d_fake).detach()


def soft_real_label(d_fake: torch.Tensor, rho_dis: float = RHO_DIS) -> torch.Tensor:
    """Eq. 7: the generator's target for its sample, ``D(G(x)) + rho_dis (1 - D(G(x)))`` instead
    of the hard 1. Detached, like :func:`soft_fake_label`: the gradient of ``(d - label)^2`` is
    ``-2 rho_dis (1 - d)``, ``rho_dis`` (0.9) times the hard label's."""
    return (d_fake + rho_dis * (1.0 - d_fake)).detach()


def l1_per_copy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean |a - b|`` per copy, ``(batch, K, ...) -> (K,)``: eq. 3's cycle term
    ``||G_YX(G_XY(x)) - x||_1`` and eq. 4's identity term ``||G_XY(y) - y||_1``."""
    return _per_copy((a - b).abs())


def frame_energy(bands: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Per-frame energy of a log band envelope, ``(batch, K, bands, frames) -> (batch, K, frames)``:
    the log of the frame's *mean band power*, ``log(mean_b exp(scale * bands)) / scale``.

    ``bands`` may be normalised log powers ``(ln P - mu) / sigma``: pass ``scale=sigma`` and the
    result is the log mean power in the same normalised units (``mu`` cancels in differences).
    Moving power from one band to another at the same total leaves it unchanged: it measures
    loudness, not spectral shape (a plain mean of the log powers, the log of the *geometric*
    mean, would also penalise the change of shape that conversion is for).
    """
    n = bands.shape[2]
    return (torch.logsumexp(scale * bands, dim=2) - math.log(n)) / scale


def energy_loss(converted: torch.Tensor, source: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Section 3.3's energy constraint: L1 between the per-frame energies (:func:`frame_energy`)
    of the conversion ``G(x)`` and of its source ``x``, both ``(batch, K, bands, frames)`` ->
    ``(K,)``: keep the source's energy contour (the paper's lambda_e = 1). The paper's formula
    sums over t, which its text ("the amplitude mean for each frame") contradicts; we follow the
    text: one energy per frame, compared frame by frame."""
    return _per_copy((frame_energy(converted, scale) - frame_energy(source, scale)).abs())


def separation_loss(est: torch.Tensor, ref: torch.Tensor, *, weights=(1.0, 1.0), lambda_audio: float = 1.0,
                    lambda_spec: float = 1.0, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    """Wang et al. eqs. (2)-(3): for each source ``s``, ``lambda_audio * L1(y, y_hat) +
    lambda_spec * L1(|STFT y|, |STFT y_hat|)``, then the sources summed with ``weights``
    (lambda_voc, lambda_acc; all 1 in the paper). ``est``, ``ref``: ``(batch, sources,
    samples)`` waveforms -> scalar. L1 terms are means over samples and time-frequency bins."""
    if est.shape != ref.shape or est.ndim != 3 or len(weights) != est.shape[1]:
        raise ValueError(f"separation_loss: expected equal (batch, sources={len(weights)}, samples) shapes, "
                         f"got {tuple(est.shape)} and {tuple(ref.shape)}")
    window = torch.hann_window(n_fft, device=est.device)

    def mag(x):
        return torch.stft(x, n_fft, hop, n_fft, window, return_complex=True).abs()

    total = est.new_zeros(())
    for s, w in enumerate(weights):
        audio_l1 = (est[:, s] - ref[:, s]).abs().mean()
        spec_l1 = (mag(est[:, s]) - mag(ref[:, s])).abs().mean()
        total = total + w * (lambda_audio * audio_l1 + lambda_spec * spec_l1)
    return total
