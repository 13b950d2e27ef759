"""An independent tiny DiffBIR in its own LDM layout and equations (ResBlock, SpatialTransformer with linear
projections, ``ControlledUnetModel`` and the IRControlNet), the reference ``tests/test_diffbir.py`` checks the
diffusers port against."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from tests.test_diffusion import LATENT

MC, CTX, HEAD_CH, G = 8, 8, 8, 4  # model channels, context dim, channels per head, GroupNorm groups


# -- an independent IRControlNet in DiffBIR's LDM layout (ResBlock, SpatialTransformer with linear projections)
class _Res(nn.Module):
    def __init__(self, ch: int, out: int, emb: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(G, ch), nn.SiLU(), nn.Conv2d(ch, out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, out))
        self.out_layers = nn.Sequential(nn.GroupNorm(G, out), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out, out, 3, padding=1))
        self.skip_connection = nn.Identity() if ch == out else nn.Conv2d(ch, out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class _Attn(nn.Module):
    def __init__(self, dim: int, ctx_dim: int) -> None:
        super().__init__()
        self.heads = dim // HEAD_CH
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k, self.to_v = nn.Linear(ctx_dim, dim, bias=False), nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], t.shape[1], self.heads, HEAD_CH).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(ctx)), split(self.to_v(ctx))
        w = (q @ k.transpose(-1, -2) / math.sqrt(HEAD_CH)).softmax(-1)
        return self.to_out((w @ v).transpose(1, 2).reshape(x.shape))


class _GEGLU(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 8 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class _Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn1, self.attn2 = _Attn(dim, dim), _Attn(dim, CTX)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(_GEGLU(dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x), self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff.net(self.norm3(x)) + x


class _ST(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(G, ch, eps=1e-6)
        self.proj_in, self.proj_out = nn.Linear(ch, ch), nn.Linear(ch, ch)
        self.transformer_blocks = nn.ModuleList([_Block(ch)])

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        y = self.proj_out(self.transformer_blocks[0](y, ctx))
        return y.transpose(1, 2).reshape(b, c, h, w) + x


class _Down(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Seq(nn.ModuleList):
    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        for m in self:
            x = m(x, emb, ctx) if not isinstance(m, nn.Conv2d) else m(x)
        return x


class _Up(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _perturb(module: nn.Module, seed: int) -> None:
    """Random norms and (normally zero-initialised) zero convs: every weight matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def _time_embedding(t: torch.Tensor) -> torch.Tensor:
    """LDM's ``timestep_embedding`` (cos first, no shift)."""
    half = MC // 2
    args = t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _Seeded(nn.Module):
    """A module whose ``_build`` draws the same random weights for the same seed (then perturbed)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng():  # the same weights every time it is built
            torch.manual_seed(seed)
            self._build()
        _perturb(self, seed)

    def _build(self) -> None:
        raise NotImplementedError


class RefControlledUnet(_Seeded):
    """DiffBIR's ``ControlledUnetModel`` for the same layout: control added to the middle output and to every skip."""

    def _build(self) -> None:
        e = 4 * MC
        self.time_embed = nn.Sequential(nn.Linear(MC, e), nn.SiLU(), nn.Linear(e, e))
        self.input_blocks = nn.ModuleList([
            _Seq([nn.Conv2d(LATENT, MC, 3, padding=1)]), _Seq([_Res(MC, MC, e)]), _Seq([_Down(MC)]),
            _Seq([_Res(MC, 2 * MC, e), _ST(2 * MC)])])
        self.middle_block = _Seq([_Res(2 * MC, 2 * MC, e), _ST(2 * MC), _Res(2 * MC, 2 * MC, e)])
        self.output_blocks = nn.ModuleList([
            _Seq([_Res(4 * MC, 2 * MC, e), _ST(2 * MC)]), _Seq([_Res(3 * MC, 2 * MC, e), _ST(2 * MC), _Up(2 * MC)]),
            _Seq([_Res(3 * MC, MC, e)]), _Seq([_Res(2 * MC, MC, e)])])
        self.out = nn.Sequential(nn.GroupNorm(G, MC), nn.SiLU(), nn.Conv2d(MC, LATENT, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, control: list[torch.Tensor]) -> torch.Tensor:
        emb, hs, control = self.time_embed(_time_embedding(t)), [], list(control)
        h = x
        for block in self.input_blocks:
            h = block(h, emb, ctx)
            hs.append(h)
        h = self.middle_block(h, emb, ctx) + control.pop()
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop() + control.pop()], dim=1), emb, ctx)
        return self.out(h)


class RefIRControlNet(_Seeded):
    """DiffBIR's ``ControlNet`` for channel_mult (1, 2), one res block per level, attention at level 1."""

    def _build(self) -> None:
        e = 4 * MC
        self.time_embed = nn.Sequential(nn.Linear(MC, e), nn.SiLU(), nn.Linear(e, e))
        self.input_blocks = nn.ModuleList([
            _Seq([nn.Conv2d(2 * LATENT, MC, 3, padding=1)]), _Seq([_Res(MC, MC, e)]), _Seq([_Down(MC)]),
            _Seq([_Res(MC, 2 * MC, e), _ST(2 * MC)])])
        self.zero_convs = nn.ModuleList([_Seq([nn.Conv2d(c, c, 1)]) for c in (MC, MC, MC, 2 * MC)])
        self.middle_block = _Seq([_Res(2 * MC, 2 * MC, e), _ST(2 * MC), _Res(2 * MC, 2 * MC, e)])
        self.middle_block_out = _Seq([nn.Conv2d(2 * MC, 2 * MC, 1)])

    def forward(self, x: torch.Tensor, hint: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> list[torch.Tensor]:
        emb = self.time_embed(_time_embedding(t))
        h, outs = torch.cat([x, hint], dim=1), []
        for block, zero in zip(self.input_blocks, self.zero_convs):
            h = block(h, emb, ctx)
            outs.append(zero(h, emb, ctx))
        return [*outs, self.middle_block_out(self.middle_block(h, emb, ctx), emb, ctx)]


def _unet(ref: RefControlledUnet) -> UNet2DConditionModel:
    """The SD-2.1-like tiny base UNet (linear projections, 2 heads of 8 channels) holding ``ref``'s weights,
    renamed by diffusers' own LDM UNet converter."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet = UNet2DConditionModel(
        sample_size=16, in_channels=LATENT, out_channels=LATENT, layers_per_block=1, block_out_channels=(MC, 2 * MC),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CTX, attention_head_dim=2, norm_num_groups=G, use_linear_projection=True)
    ldm = {"model.diffusion_model." + k: v for k, v in ref.state_dict().items()}
    unet.load_state_dict(convert_ldm_unet_checkpoint(ldm, dict(unet.config)), strict=True)
    return unet
