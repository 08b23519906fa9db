#!/usr/bin/env python3
"""A plain PyTorch loop of the reference CGAN, the yardstick `bench_train.py` times gankit against.

It runs seed-cgan's algorithm the way common PyTorch GAN examples are written, so that a speed
ratio says what gankit's engineering buys over a typical implementation of the same thing:

- the reference design's MLP CGAN (multiply conditioning; G 256-512-1024 with LeakyReLU and
  Keras-style BatchNorm; D 512-512-512 with dropout 0.4; Adam 2e-4, beta_1 0.5);
- the Keras-GAN step: G in eval mode makes D's fakes, D takes two optimizer steps (real, then
  fake), G steps through D with the same noise and random labels;
- written plainly: a shuffling DataLoader over a TensorDataset, sigmoid outputs with BCELoss,
  D's weight gradients computed in G's step and thrown away, `.item()` on the losses and
  accuracies every iteration.

The images are random (their content does not change the speed).

  python benchmarks/ref_loop.py --iterations 2000 --batch-size 32
Prints `ms_per_iter=...` as its last line.
"""

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

LATENT, CLASSES, PIXELS = 100, 10, 28 * 28


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_embedding = nn.Embedding(CLASSES, LATENT)
        layers, width = [], LATENT
        for out in (256, 512, 1024):
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2),
                       nn.BatchNorm1d(out, momentum=0.2, eps=1e-3)]  # fmt: skip
            width = out
        self.model = nn.Sequential(*layers, nn.Linear(width, PIXELS), nn.Tanh())

    def forward(self, noise, labels):
        return self.model(noise * self.label_embedding(labels)).view(-1, 1, 28, 28)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_embedding = nn.Embedding(CLASSES, PIXELS)
        self.model = nn.Sequential(
            nn.Linear(PIXELS, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 512), nn.LeakyReLU(0.2), nn.Dropout(0.4),
            nn.Linear(512, 512), nn.LeakyReLU(0.2), nn.Dropout(0.4),
            nn.Linear(512, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, images, labels):
        return self.model(images.view(images.size(0), -1) * self.label_embedding(labels))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(5000, 1, 28, 28) * 2 - 1
    labels = torch.randint(0, CLASSES, (5000,))
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size,
                        shuffle=True, drop_last=True)  # fmt: skip
    generator, discriminator = Generator(), Discriminator()
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    iteration, start = 0, time.perf_counter()
    while iteration < args.iterations:
        for real_images, real_labels in loader:
            batch = real_images.size(0)
            ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
            noise = torch.randn(batch, LATENT)
            generator.eval()
            with torch.no_grad():
                fake_images = generator(noise, real_labels)
            generator.train()

            # D: one step on the real batch, one on the fake batch (Keras' train_on_batch twice)
            optimizer_d.zero_grad()
            real_output = discriminator(real_images, real_labels)
            d_loss_real = criterion(real_output, ones)
            d_loss_real.backward()
            optimizer_d.step()
            optimizer_d.zero_grad()
            fake_output = discriminator(fake_images, real_labels)
            d_loss_fake = criterion(fake_output, zeros)
            d_loss_fake.backward()
            optimizer_d.step()
            d_accuracy = 0.5 * ((real_output > 0.5).float().mean().item()
                                + (fake_output < 0.5).float().mean().item())  # fmt: skip

            # G: the same noise with random labels, through D (its gradients are discarded)
            optimizer_g.zero_grad()
            sampled_labels = torch.randint(0, CLASSES, (batch,))
            g_loss = criterion(
                discriminator(generator(noise, sampled_labels), sampled_labels), ones
            )
            g_loss.backward()
            optimizer_g.step()

            _ = (d_loss_real.item(), d_loss_fake.item(), d_accuracy, g_loss.item())
            iteration += 1
            if iteration >= args.iterations:
                break
    elapsed = time.perf_counter() - start
    print(f"ms_per_iter={1000 * elapsed / args.iterations:.3f}")


if __name__ == "__main__":
    main()
