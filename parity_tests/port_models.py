"""PyTorch models written as a user would, none of them in the registry: the cases of
``test_port.py``. Together they use the whole vocabulary of ``jaxnets port`` once: every layer,
functional form and shape operation, containers, nested modules and raw parameters, and the
layout rewrites (a flatten after convolutions, ``cat`` on channels, ``mean`` over space, a
softmax over channels, permutes to channels last and back).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallConvNet(nn.Module):
    """A CIFAR-style CNN: conv blocks in an nn.Sequential, then a flatten and a classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(16 * 2 * 2, 32),
            nn.ReLU(),
            nn.Linear(32, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)  # (C, H, W) order
        return self.classifier(x)


class BasicBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return F.relu(out)


class TinyResNet(nn.Module):
    """Residual blocks (a user module, used twice) in an nn.Sequential, global average pool."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.layer1(x)
        x = self.flatten(self.pool(x))
        return self.fc(x)


class Inception(nn.Module):
    """Branches concatenated on the channel dim; a mean over space as the global pool."""

    def __init__(self):
        super().__init__()
        self.branch1 = nn.Conv2d(3, 4, 1)
        self.branch3 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.branch_pool = nn.Conv2d(3, 2, 1)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        b1 = F.relu(self.branch1(x))
        b3 = F.relu(self.branch3(x))
        bp = F.relu(self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1)))
        x = torch.cat([b1, b3, bp], dim=1)  # channels
        x = x.mean(dim=(2, 3))  # over space
        return self.head(x)


class TextClassifier(nn.Module):
    """Token ids -> embeddings -> mean over the sequence -> LayerNorm -> MLP -> log-probs."""

    def __init__(self, vocab_size=50, dim=16, num_classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 32)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, num_classes)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, tokens):
        x = self.embedding(tokens)  # (N, L, dim)
        x = x.mean(dim=1)
        x = self.act(self.fc1(self.norm(x)))
        return self.log_softmax(self.fc2(x))


class SignalNet(nn.Module):
    """1-D convolutions over (N, C, L) signals, BatchNorm1d on 3-D input, ELU, a transpose."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 8, kernel_size=5, padding=2)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 8, kernel_size=3, dilation=2)
        self.act = nn.ELU(alpha=0.5)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = F.elu(self.conv2(x))  # (N, 8, L - 4)
        x = x.transpose(1, 2)  # (N, L - 4, 8): features last for the Linear
        x = self.fc(x)
        return x.sum(dim=1)


class ChannelMixer(nn.Module):
    """ConvNeXt-style: permute to channels last, LayerNorm and Linear over channels, back."""

    def __init__(self, channels=6):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding="same", groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv = nn.Linear(channels, 2 * channels)
        self.act = nn.GELU(approximate="tanh")
        self.pwconv2 = nn.Linear(2 * channels, channels)
        self.gamma = nn.Parameter(1e-2 * torch.ones(channels))

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.pwconv2(self.act(self.pwconv(self.norm(x))))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)  # back to (N, C, H, W)
        return shortcut + x


class GatedMLP(nn.Module):
    """Raw nn.Parameter attributes, a matmul with one, a sigmoid gate, views with x.size(0)."""

    def __init__(self, in_features=12, hidden=16, out_features=3):
        super().__init__()
        self.proj = nn.Parameter(torch.randn(in_features, hidden) / in_features**0.5)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.gate = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, out_features)

    def forward(self, x):
        x = x.view(x.size(0), -1)  # (N, 3, 4) -> (N, 12)
        h = x @ self.proj + self.bias
        h = h * torch.sigmoid(self.gate(x))
        h = torch.tanh(h) - 0.5 * h / 2
        return self.out(h).reshape(x.size(0), -1)


class ActivationZoo(nn.Module):
    """Every activation once, modules in an nn.ModuleList called by index in a loop."""

    def __init__(self, width=10):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(6)])
        self.acts = nn.ModuleList(
            [
                nn.LeakyReLU(0.2),
                nn.ELU(),
                nn.SiLU(),
                nn.Tanh(),
                nn.Sigmoid(),
                nn.Identity(),
            ]
        )
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        for i in range(len(self.layers)):
            x = self.acts[i](self.layers[i](x))
        x = F.leaky_relu(x) + F.silu(x) + F.gelu(x) + torch.relu(x) + F.elu(x, alpha=2.0)
        return self.softmax(x)


class DeepNarrow(nn.Module):
    """A ModuleList used whole, sliced, and indexed: first layer alone, the rest in a loop."""

    def __init__(self, sizes=(8, 16, 16, 16, 4)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in sizes[1:-1])

    def forward(self, x):
        x = torch.relu(self.norms[0](self.layers[0](x)))
        for layer, norm in zip(self.layers[1:-1], self.norms[1:], strict=True):
            x = x + torch.relu(norm(layer(x)))  # residual
        return self.layers[-1](x)


class PoolZoo(nn.Module):
    """The pools and the dropouts: modules and functional forms, strides and paddings."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.drop2d = nn.Dropout2d(0.25)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(2)
        self.adaptive = nn.AdaptiveMaxPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2 + 4, 2)

    def forward(self, x):
        x = self.drop2d(F.relu(self.conv(x)))  # (N, 4, 12, 12)
        a = self.avgpool(self.maxpool(x))  # (N, 4, 3, 3)
        b = F.max_pool2d(x, kernel_size=2, stride=2)  # (N, 4, 6, 6)
        b = self.adaptive(b)  # (N, 4, 2, 2)
        a = F.adaptive_avg_pool2d(a, 1).view(-1, 4)
        x = torch.cat((b.flatten(1), a), dim=1)
        x = F.dropout(x, p=0.1, training=self.training)
        return self.fc(x)


class ChannelAttention(nn.Module):
    """A softmax over channels of an image, weights multiplied back, sums over space."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.score = nn.Conv2d(5, 5, 1)

    def forward(self, x):
        x = torch.tanh(self.conv(x))
        attn = F.softmax(self.score(x), dim=1)  # over channels
        x = (x * attn).sum(dim=(2, 3), keepdim=True)  # (N, 5, 1, 1)
        x = x.squeeze(-1).squeeze(-1)
        return F.log_softmax(x[:, 1:], dim=-1)


class TensorOps(nn.Module):
    """Tensor arithmetic between layers: powers, reciprocals, a functional linear with raw
    parameters, batched matmuls, indexing, unsqueeze, sizes computed from x.size(0)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 8) / 8)
        self.bias = nn.Parameter(torch.zeros(6))
        self.mix = nn.Linear(6, 6)

    def forward(self, x):  # (N, 2, 8)
        h = F.linear(x, self.weight, self.bias)  # (N, 2, 6)
        h = F.relu6(h) - 0.5 * h.pow(2) + 1 / (1 + h.abs())
        h = 1 - torch.sigmoid(-h)
        g = torch.matmul(h, h.transpose(1, 2))  # (N, 2, 2)
        h = torch.bmm(g, h) / 3  # (N, 2, 6)
        first = h[:, 0]  # (N, 6)
        h = h.reshape(x.size(0) * 2, 6)
        h = self.mix(h).view(x.size(0), 2, 6).sum(dim=1)
        return h + first.unsqueeze(1).squeeze(1).detach() * 0 + first


class Unsupported(nn.Module):
    """A recurrent layer: outside the vocabulary, refused by name and source line."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 8)
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        x = torch.relu(self.fc(x))
        x, _ = self.lstm(x)
        return x[:, -1]
