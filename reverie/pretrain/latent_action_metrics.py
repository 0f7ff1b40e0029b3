"""Do latent actions mean real actions? The measures that compare a latent action model's codes
([18] Genie, Sec. 2.1) with the true actions withheld from its training video.

- Normalized mutual information between codes c and true actions y over the same transitions,

      NMI(c, y) = I(c; y) / ((H(c) + H(y)) / 2),

  from their joint counts (the arithmetic normalization, scikit-learn's default): 0 for
  independent labels, 1 when each determines the other. Beside it the same with y shuffled, the
  value that chance alone gives on this many transitions.
- A linear probe: multinomial logistic regression from the continuous latent action a~ (before
  the VQ) to y, fit on some clips and scored on others, beside the majority-class baseline.
- Codebook use: the fraction of the |A| codes taken and the perplexity exp(H(c)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def joint_counts(codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(max code + 1, max label + 1) counts of each (code, label) pair among codes (N,) and labels (N,) int64."""
    rows, columns = int(codes.max()) + 1, int(labels.max()) + 1
    return torch.bincount(codes * columns + labels, minlength=rows * columns).reshape(rows, columns).double()


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of a distribution (any shape, summing to 1); 0 log 0 = 0."""
    return -(probabilities * probabilities.clamp(min=1e-300).log()).sum()


def normalized_mutual_information(codes: torch.Tensor, labels: torch.Tensor) -> float:
    """NMI of two labellings (N,) int64 of the same N items (see the module docstring); 0 when both are constant."""
    joint = joint_counts(codes, labels)
    joint = joint / joint.sum()
    code_entropy, label_entropy = entropy(joint.sum(1)), entropy(joint.sum(0))
    mutual_information = code_entropy + label_entropy - entropy(joint)
    normalizer = (code_entropy + label_entropy) / 2
    return float(mutual_information / normalizer) if normalizer > 0 else 0.0


def shuffled_nmi(codes: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> float:
    """The NMI of the codes with the labels in a random order: what chance gives on N items."""
    return normalized_mutual_information(codes, labels[torch.randperm(len(labels), generator=generator)])


def codebook_use(codes: torch.Tensor, codebook_size: int) -> dict:
    """The share of the codes taken, the perplexity exp(H) of their frequencies, and the counts."""
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).double()
    return {
        "fraction_used": float((counts > 0).double().mean()),
        "perplexity": float(entropy(counts / counts.sum()).exp()),
        "counts": counts.long().tolist(),
    }


def linear_probe(
    train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, test_labels: torch.Tensor,
    weight_decay: float = 1e-3, iterations: int = 200,
) -> dict:  # fmt: skip
    """Multinomial logistic regression from features (N, D) to labels (N,) int64, fit by L-BFGS in
    float64 on features standardized with the training set's statistics: its accuracy on the test
    set, and that of always answering the training set's most common label."""
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    mean, std = train_features.double().mean(0), train_features.double().std(0).clamp(min=1e-8)
    train_inputs, test_inputs = (train_features.double() - mean) / std, (test_features.double() - mean) / std
    weights = torch.zeros(train_inputs.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train_inputs @ weights + bias, train_labels) + weight_decay * weights.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        accuracy = float(((test_inputs @ weights + bias).argmax(1) == test_labels).double().mean())
    majority = int(torch.bincount(train_labels, minlength=classes).argmax())
    return {"accuracy": accuracy, "majority_baseline": float((test_labels == majority).double().mean()), "classes": classes,
            "train_transitions": len(train_labels), "test_transitions": len(test_labels)}  # fmt: skip
