"""A linear probe in numpy alone, for scoring on a device that has neither torch nor scikit-learn.

`NumpyLogisticRegression` minimises scikit-learn's multinomial logistic-regression objective
(0.5·‖W‖² + C·Σ cross-entropy, intercept unpenalised) with L-BFGS to a tight gradient tolerance.
The problem is strictly convex, so it reaches the optimum scikit-learn's lbfgs solver reaches: the
same probe, not an approximation of it (tests/test_probe.py compares the two on real embeddings).
"""

from __future__ import annotations

import numpy as np


class NumpyLogisticRegression:
    """Multinomial L2 logistic regression: `fit(x, y)`, `predict(x)`, `predict_proba(x)`."""

    def __init__(self, C: float = 1.0, max_iter: int = 3000, tol: float = 1e-6, memory: int = 20):
        self.C, self.max_iter, self.tol, self.memory = C, max_iter, tol, memory

    def _unpack(self, theta: np.ndarray, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return theta[: d * k].reshape(d, k), theta[d * k :]

    def _objective(self, theta: np.ndarray, x: np.ndarray, onehot: np.ndarray) -> tuple[float, np.ndarray]:
        d, k = x.shape[1], onehot.shape[1]
        w, b = self._unpack(theta, d, k)
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        loss = 0.5 * float((w * w).sum()) - self.C * float((onehot * logp).sum())
        residual = self.C * (np.exp(logp) - onehot)
        return loss, np.concatenate([(x.T @ residual + w).ravel(), residual.sum(0)])

    def fit(self, x: np.ndarray, y: np.ndarray) -> NumpyLogisticRegression:
        x = np.asarray(x, dtype=np.float64)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        onehot = np.eye(len(self.classes_))[codes]
        theta = np.zeros(x.shape[1] * len(self.classes_) + len(self.classes_))
        loss, grad = self._objective(theta, x, onehot)
        steps: list[tuple[np.ndarray, np.ndarray]] = []
        scale = max(1.0, float(np.abs(grad).max()))
        self.n_iter_ = 0
        for self.n_iter_ in range(1, self.max_iter + 1):
            direction = -_two_loop(grad, steps)
            slope = float(grad @ direction)
            if slope >= 0:  # not a descent direction: restart from the gradient
                steps.clear()
                direction, slope = -grad, -float(grad @ grad)
            t = 1.0 if steps else 1.0 / max(1.0, float(np.abs(grad).max()))
            while True:  # backtracking to the Armijo condition
                new = theta + t * direction
                new_loss, new_grad = self._objective(new, x, onehot)
                if new_loss <= loss + 1e-4 * t * slope or t < 1e-12:
                    break
                t *= 0.5
            s, r = new - theta, new_grad - grad
            if float(s @ r) > 1e-12:
                steps.append((s, r))
                steps[:] = steps[-self.memory :]
            theta, loss, grad = new, new_loss, new_grad
            if float(np.abs(grad).max()) <= self.tol * scale:
                break
        self.coef_, self.intercept_ = self._unpack(theta, x.shape[1], len(self.classes_))
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.decision_function(x)
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(1)]


def _two_loop(grad: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """L-BFGS's approximate inverse-Hessian times `grad` from the last (s, y) pairs."""
    q = grad.copy()
    alphas = []
    for s, y in reversed(steps):
        a = float(s @ q) / float(y @ s)
        alphas.append(a)
        q -= a * y
    if steps:
        s, y = steps[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y), a in zip(steps, reversed(alphas)):
        q += (a - float(y @ q) / float(y @ s)) * s
    return q


def logistic_regression(C: float, seed: int = 0, max_iter: int = 3000):
    """scikit-learn's LogisticRegression where it is installed, else the numpy one."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return NumpyLogisticRegression(C=C, max_iter=max_iter)
    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
