"""The measures of latent against true actions: NMI against hand-computed values and its invariance
to renaming, the shuffled baseline, codebook use, and the linear probe on separable and on
unrelated features."""

from __future__ import annotations

import math

import pytest
import torch

from reverie.pretrain.latent_action_metrics import codebook_use, joint_counts, linear_probe, normalized_mutual_information, shuffled_nmi


def test_nmi_is_one_for_the_same_labelling_under_any_names_and_zero_for_independent_ones():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    assert normalized_mutual_information(labels, labels) == pytest.approx(1.0)
    renamed = torch.tensor([5, 3, 1])[labels]
    assert normalized_mutual_information(renamed, labels) == pytest.approx(1.0)
    grid = torch.arange(12)
    assert normalized_mutual_information(grid % 2, grid // 2 % 3) == pytest.approx(0.0, abs=1e-12)  # every pair equally often
    assert normalized_mutual_information(torch.zeros(5, dtype=torch.int64), torch.arange(5)) == 0.0


def test_nmi_matches_the_formula_on_a_small_table():
    codes = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0])
    assert joint_counts(codes, labels).tolist() == [[3.0, 1.0], [1.0, 3.0]]
    joint = [[3 / 8, 1 / 8], [1 / 8, 3 / 8]]
    mutual = sum(p * math.log(p / 0.25) for row in joint for p in row)  # marginals are (1/2, 1/2)
    assert normalized_mutual_information(codes, labels) == pytest.approx(mutual / math.log(2), rel=1e-9)


def test_the_shuffled_baseline_is_near_zero_where_the_labels_agree_fully():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (4000,), generator=generator)
    assert normalized_mutual_information(labels, labels) == pytest.approx(1.0)
    assert shuffled_nmi(labels, labels, torch.Generator().manual_seed(1)) < 0.01


def test_codebook_use_counts_the_codes_taken_and_their_perplexity():
    use = codebook_use(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), 8)
    assert use["fraction_used"] == 0.5 and use["counts"] == [2, 2, 2, 2, 0, 0, 0, 0]
    assert use["perplexity"] == pytest.approx(4.0)
    assert codebook_use(torch.zeros(6, dtype=torch.int64), 8)["perplexity"] == pytest.approx(1.0)


def test_the_probe_reads_separable_features_and_not_unrelated_ones():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=generator)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]], dtype=torch.float64)
    features = centres[labels] + torch.randn(600, 2, generator=generator, dtype=torch.float64)
    separable = linear_probe(features[:300], labels[:300], features[300:], labels[300:])
    assert separable["accuracy"] > 0.95 and separable["majority_baseline"] < 0.45
    assert separable["classes"] == 3 and separable["test_transitions"] == 300
    noise = torch.randn(600, 4, generator=generator, dtype=torch.float64)
    unrelated = linear_probe(noise[:300], labels[:300], noise[300:], labels[300:])
    assert unrelated["accuracy"] < 0.5
