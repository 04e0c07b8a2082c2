"""What an exported graph computes: token ids + mask in, the model's product out.

Pooling lives in the graph (mean over the mask, then L2 norm, as the model's recipe says), so every
runtime returns finished sentence embeddings and a device needs no pooling code of its own.
"""

from __future__ import annotations

import torch

from edgelm.kernels.pooling import sentence_vectors


class EmbeddingGraph(torch.nn.Module):
    """Encoder + pooling (+ normalization): (input_ids, attention_mask) -> sentence embeddings."""

    def __init__(self, encoder: torch.nn.Module, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        self.encoder, self.pooling, self.normalize = encoder, pooling, normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return sentence_vectors(hidden, attention_mask, self.pooling, self.normalize)


class ClassifierGraph(torch.nn.Module):
    """Sequence classifier: (input_ids, attention_mask) -> logits."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class BodyGraph(torch.nn.Module):
    """A routed model's shared body: (input_ids, attention_mask) -> token states."""

    def __init__(self, body: torch.nn.Module):
        super().__init__()
        self.body = body

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class ExpertGraph(torch.nn.Module):
    """One expert of a routed model: (body token states, attention_mask) -> its sentence vectors."""

    def __init__(self, expert: torch.nn.Module, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        self.expert, self.pooling, self.normalize = expert, pooling, normalize

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return sentence_vectors(self.expert(hidden, attention_mask), attention_mask, self.pooling, self.normalize)
