"""AutoVC (Qian et al. 2019), as chapter 1's paper draws it in Fig. 7 and section 3.3.

Read this file against Fig. 7. An utterance's log-mel ``X`` ``(batch, frames, n_mels)`` and a
speaker embedding ``E_s`` ``(batch, dim_emb)`` (from the GE2E speaker encoder, Fig. 7 (b))
go through:

(a) the content encoder :class:`ContentEncoder`: ``[X; E_s]`` (the embedding copied to every
    frame) -> 3 x (conv 5x1, 512 channels, batch norm, ReLU) -> 2-layer BLSTM with ``dim_neck``
    cells per direction -> down-sampling by ``freq`` (:func:`downsample`): the content codes
    ``C`` ``(batch, frames // freq, 2 dim_neck)``. ``dim_neck`` and ``freq`` are the bottleneck
    whose size section 4.2 studies: ``2 dim_neck / freq`` numbers per frame get through.
(c) the decoder :class:`Decoder`: the codes, up-sampled by repetition (:func:`upsample`),
    beside the *target* speaker's embedding, ``[C; E_t]`` -> LSTM (512) -> 3 x (conv 5x1, 512,
    batch norm, ReLU) -> 2-layer LSTM (1024) -> linear to ``n_mels``: ``X_hat``;
    then the post-net :class:`Postnet` (5 x conv 5x1 512, batch norm, tanh but the last) adds a
    residual: ``X_hat_post = X_hat + Postnet(X_hat)``.
(d) a vocoder turns mels into sound (the paper's neural vocoder took over 20 minutes an
    utterance on a GPU; the book uses Griffin-Lim, :func:`voicebook.audio.mel_to_wave`).

Self-reconstruction uses ``E_t = E_s``; conversion ``C(X_A, B)`` uses ``E_t = E_s(B)``.
Layer sizes follow AutoVC's code (``Generator(dim_neck=32, dim_emb=256, dim_pre=512,
freq=32)``); ``width`` scales the 512 and 1024 (not the bottleneck) so a small model trains on
a CPU.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..train import unwrap
from ..fp32 import fp32_rnn

__all__ = ["AutoVC", "ContentEncoder", "Decoder", "Postnet", "downsample", "upsample", "content_codes", "convert"]


def conv_bn(c_in: int, c_out: int, gain: str = "relu", kernel: int = 5) -> nn.Sequential:
    """Conv1d ``kernel`` x 1 (length-preserving padding) + BatchNorm1d, Xavier-initialised for ``gain``."""
    conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.xavier_uniform_(conv.weight, gain=nn.init.calculate_gain(gain))
    return nn.Sequential(conv, nn.BatchNorm1d(c_out))


def downsample(blstm_out: torch.Tensor, dim_neck: int, freq: int) -> torch.Tensor:
    """AutoVC's down-sampling of the BLSTM output ``(batch, frames, 2 dim_neck)``.

    Keeps the forward direction at ``t = freq-1, 2 freq-1, ...`` (the end of each block of
    ``freq`` frames: it has read the whole block) and the backward direction at ``t = 0, freq,
    ...`` (the block's start: it too has read the whole block), concatenated:
    ``(batch, frames // freq, 2 dim_neck)``. ``frames`` must be a multiple of ``freq``.
    """
    forward, backward = blstm_out[..., :dim_neck], blstm_out[..., dim_neck:]
    return torch.cat([forward[:, freq - 1::freq], backward[:, ::freq]], dim=-1)


def upsample(codes: torch.Tensor, freq: int) -> torch.Tensor:
    """Each code repeated ``freq`` times: ``(batch, blocks, d) -> (batch, blocks * freq, d)``."""
    return codes.repeat_interleave(freq, dim=1)


def broadcast(emb: torch.Tensor, frames: int) -> torch.Tensor:
    """A per-utterance vector copied to every frame: ``(batch, d) -> (batch, frames, d)``."""
    return emb[:, None, :].expand(-1, frames, -1)


class ContentEncoder(nn.Module):
    """Fig. 7 (a): mel ``(batch, frames, n_mels)`` and ``E_s`` ``(batch, dim_emb)`` -> content codes
    ``(batch, frames // freq, 2 dim_neck)``."""

    def __init__(self, dim_neck: int, freq: int, n_mels: int = 80, dim_emb: int = 256, channels: int = 512):
        super().__init__()
        self.dim_neck, self.freq = dim_neck, freq
        self.convs = nn.ModuleList([conv_bn(n_mels + dim_emb if i == 0 else channels, channels) for i in range(3)])
        self.blstm = nn.LSTM(channels, dim_neck, num_layers=2, batch_first=True, bidirectional=True)

    def forward(self, mel: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = torch.cat([mel, broadcast(emb, mel.shape[1])], dim=-1)   # [X; E_s] (batch, frames, n_mels + dim_emb)
        x = x.transpose(1, 2)                                        # channels first for Conv1d
        for conv in self.convs:
            x = F.relu(conv(x))                                      # conv 5x1, batch norm, ReLU
        out, _ = fp32_rnn(self.blstm, x.transpose(1, 2))             # (batch, frames, 2 dim_neck)
        return downsample(out, self.dim_neck, self.freq)


class Decoder(nn.Module):
    """Fig. 7 (c) before the post-net: ``(batch, frames, 2 dim_neck + dim_emb)`` -> ``(batch, frames, n_mels)``."""

    def __init__(self, dim_neck: int, n_mels: int = 80, dim_emb: int = 256, dim_pre: int = 512, dim_lstm: int = 1024):
        super().__init__()
        self.lstm1 = nn.LSTM(2 * dim_neck + dim_emb, dim_pre, num_layers=1, batch_first=True)
        self.convs = nn.ModuleList([conv_bn(dim_pre, dim_pre) for _ in range(3)])
        self.lstm2 = nn.LSTM(dim_pre, dim_lstm, num_layers=2, batch_first=True)
        self.proj = nn.Linear(dim_lstm, n_mels)
        nn.init.xavier_uniform_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = fp32_rnn(self.lstm1, x)                               # LSTM 512
        x = x.transpose(1, 2)
        for conv in self.convs:
            x = F.relu(conv(x))                                      # 3 x (conv 5x1 512, batch norm, ReLU)
        x, _ = fp32_rnn(self.lstm2, x.transpose(1, 2))               # 2 x LSTM 1024
        return self.proj(x)                                          # linear to n_mels


class Postnet(nn.Module):
    """Fig. 7 (c), the post-net: the residual ``(batch, frames, n_mels)`` -> ``(batch, frames, n_mels)``."""

    def __init__(self, n_mels: int = 80, channels: int = 512, layers: int = 5):
        super().__init__()
        sizes = [n_mels] + [channels] * (layers - 1) + [n_mels]
        gains = ["tanh"] * (layers - 1) + ["linear"]
        self.convs = nn.ModuleList([conv_bn(a, b, g) for a, b, g in zip(sizes[:-1], sizes[1:], gains)])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(1, 2)
        for conv in self.convs[:-1]:
            x = torch.tanh(conv(x))                                  # conv 5x1 512, batch norm, tanh
        return self.convs[-1](x).transpose(1, 2)                     # the last: linear, back to n_mels


class AutoVC(nn.Module):
    """AutoVC (Fig. 7): content encoder (a), decoder and post-net (c).

    ``dim_neck`` (BLSTM cells per direction) and ``freq`` (down-sampling factor) set the
    bottleneck; AutoVC's released model uses (32, 32), the chapter's paper found ``dim_neck=64``
    best for CycleAutoVC. ``width`` multiplies the 512 conv channels / first decoder LSTM and the
    1024 decoder LSTM (``width=1`` is the paper's model; 1/16 to 1/8 train on a CPU).
    """

    def __init__(self, dim_neck: int = 32, freq: int = 32, *, n_mels: int = 80, dim_emb: int = 256, width: float = 1.0):
        super().__init__()
        if dim_neck < 1 or freq < 1:
            raise ValueError(f"dim_neck and freq must be >= 1, got {dim_neck}, {freq}")
        channels, dim_lstm = max(1, round(512 * width)), max(1, round(1024 * width))
        self.dim_neck, self.freq, self.n_mels, self.dim_emb = dim_neck, freq, n_mels, dim_emb
        self.encoder = ContentEncoder(dim_neck, freq, n_mels, dim_emb, channels)
        self.decoder = Decoder(dim_neck, n_mels, dim_emb, channels, dim_lstm)
        self.postnet = Postnet(n_mels, channels)

    def code_size(self, frames: int) -> int:
        """Numbers in the content codes of ``frames`` frames: ``2 dim_neck frames / freq``."""
        return 2 * self.dim_neck * (frames // self.freq)

    def forward(self, mel: torch.Tensor, emb_src: torch.Tensor, emb_tgt: torch.Tensor | None = None,
                *, codes_only: bool = False, recode: bool = False):
        """``mel`` ``(batch, frames, n_mels)``, embeddings ``(batch, dim_emb)``.

        Returns ``(mel_out, mel_postnet, codes)``: the decoder's output and the post-net's
        (both ``(batch, frames, n_mels)``) and the content codes ``(batch, frames // freq,
        2 dim_neck)``. ``emb_tgt=None`` reconstructs (``E_t = E_s``). ``codes_only``: return
        just the codes ``E_c(X)``. ``recode``: also encode the output again, ``E_c([X_post;
        E_t])``, as a fourth element (what ``L_cont`` compares; done here so that one call of a
        DistributedDataParallel wrapper computes the whole loss). ``frames`` must be a multiple
        of ``freq`` (:func:`convert` pads for you).
        """
        self._check(mel, emb_src, emb_tgt)
        codes = self.encoder(mel, emb_src)                               # (a) E_c([X; E_s])
        if codes_only:
            return codes
        emb = emb_src if emb_tgt is None else emb_tgt
        frames = mel.shape[1]
        x = torch.cat([upsample(codes, self.freq), broadcast(emb, frames)], dim=-1)  # [C up; E_t]
        mel_out = self.decoder(x)                                        # (c) decoder
        mel_postnet = mel_out + self.postnet(mel_out)                    # (c) post-net residual
        if recode:
            return mel_out, mel_postnet, codes, self.encoder(mel_postnet, emb)
        return mel_out, mel_postnet, codes

    def _check(self, mel, emb_src, emb_tgt) -> None:
        if mel.dim() != 3 or mel.shape[-1] != self.n_mels:
            raise ValueError(f"AutoVC expects mels of shape (batch, frames, {self.n_mels}), got {tuple(mel.shape)}")
        if mel.shape[1] == 0 or mel.shape[1] % self.freq:
            raise ValueError(f"AutoVC needs a positive number of frames that is a multiple of freq={self.freq}, "
                             f"got {mel.shape[1]} (convert() and content_codes() pad for you)")
        for name, e in (("emb_src", emb_src), ("emb_tgt", emb_tgt)):
            if e is not None and tuple(e.shape) != (mel.shape[0], self.dim_emb):
                raise ValueError(f"{name} must be (batch, dim_emb) = ({mel.shape[0]}, {self.dim_emb}), "
                                 f"got {tuple(e.shape)}")


# ----------------------------------------------------------------------------- inference

def _autovc(model: nn.Module) -> AutoVC:
    """The AutoVC inside ``model`` (itself, or a CycleAutoVC's ``.autovc``; DDP unwrapped)."""
    model = unwrap(model)
    return getattr(model, "autovc", model)


@contextmanager
def _inference(model: nn.Module):
    """Eval mode (batch norm uses its running statistics) and no grad; restores the modes after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes.items():
            m.train(training)


def _batch(model: AutoVC, mel, *embs):
    """-> (mel ``(batch, frames padded to a multiple of freq, n_mels)``, embs ``(batch, dim_emb)``,
    original frames, whether the input was unbatched), all on the model's device."""
    device = next(model.parameters()).device
    mel = torch.as_tensor(mel, dtype=torch.float32, device=device)
    if mel.dim() not in (2, 3) or mel.shape[-1] != model.n_mels:
        hint = " (band-major? pass it transposed)" if mel.dim() in (2, 3) and mel.shape[-2] == model.n_mels else ""
        raise ValueError(f"expected a mel (frames, {model.n_mels}) or (batch, frames, {model.n_mels}), "
                         f"got {tuple(mel.shape)}{hint}")
    single = mel.dim() == 2
    mel = mel[None] if single else mel
    frames = mel.shape[1]
    if frames == 0:
        raise ValueError("the mel has no frames")
    if not torch.isfinite(mel).all():
        raise ValueError("the mel contains NaN or inf")
    pad = -frames % model.freq                                           # silence: each band's minimum
    if pad:
        mel = torch.cat([mel, mel.amin(dim=1, keepdim=True).expand(-1, pad, -1)], dim=1)
    embs = [torch.as_tensor(e, dtype=torch.float32, device=device) for e in embs]
    embs = [e[None].expand(mel.shape[0], -1) if e.dim() == 1 else e for e in embs]
    return mel, embs, frames, single


def content_codes(model: nn.Module, mel: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """The content codes ``E_c(X)`` (for the speaker-leakage probe of section 4.2), in eval mode.

    ``mel``: ``(frames, n_mels)`` or ``(batch, frames, n_mels)``, padded with silence to a
    multiple of ``freq``; ``emb``: ``(dim_emb,)`` or ``(batch, dim_emb)``. Returns
    ``(frames', 2 dim_neck)`` or ``(batch, frames', 2 dim_neck)``, ``frames' = ceil(frames / freq)``.
    """
    vc = _autovc(model)
    mel, (emb,), _, single = _batch(vc, mel, emb)
    with _inference(vc):
        codes = vc(mel, emb, codes_only=True)
    return codes[0] if single else codes


def convert(model: nn.Module, mel_src: torch.Tensor, emb_src: torch.Tensor, emb_tgt: torch.Tensor) -> torch.Tensor:
    """``C(X_A, B)``: ``mel_src`` said by the speaker of ``emb_tgt`` (post-net output), in eval mode.

    ``mel_src``: ``(frames, n_mels)`` or ``(batch, frames, n_mels)``; embeddings ``(dim_emb,)``
    or ``(batch, dim_emb)``. Returns a mel of the input's shape (padding to a multiple of
    ``freq`` is added, then cut off). ``model``: an :class:`AutoVC` or a CycleAutoVC.
    """
    vc = _autovc(model)
    mel, (emb_src, emb_tgt), frames, single = _batch(vc, mel_src, emb_src, emb_tgt)
    with _inference(vc):
        _, mel_postnet, _ = vc(mel, emb_src, emb_tgt)
    out = mel_postnet[:, :frames]
    return out[0] if single else out
