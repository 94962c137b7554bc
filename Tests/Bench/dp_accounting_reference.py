#!/usr/bin/env python3
"""Checks Domicile's accountants against Google's dp-accounting, computed live.

For a grid of (noise multiplier, sample rate, steps, δ), runs `domicile privacy
rdp` and dp-accounting's RDP accountant with the same Rényi orders, and
requires the two ε to agree within 1%. For a grid of (ε, δ), runs `domicile
privacy gaussian` and checks the σ it returns with dp-accounting's privacy loss
distribution of the Gaussian mechanism: the PLD's δ at ε for that σ must equal
the target δ within 1%.

usage: dp_accounting_reference.py PATH/TO/domicile
Exit status 0 when everything agrees, 1 otherwise, 2 when dp-accounting is missing.
"""
import itertools
import json
import subprocess
import sys

try:
    import dp_accounting
    from dp_accounting import rdp as dp_rdp
    from dp_accounting.pld import privacy_loss_distribution
except ImportError:
    print("dp-accounting is not installed (pip install dp-accounting)", file=sys.stderr)
    sys.exit(2)

ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]


def domicile(binary, *arguments):
    output = subprocess.run([binary, "privacy", *arguments], check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main():
    binary = sys.argv[1]
    failures = 0
    checked = 0
    for sigma, q, steps, delta in itertools.product([0.6, 1.1, 2.0, 5.0], [0.001, 0.01, 0.1], [1, 100, 10_000], [1e-5, 1e-7]):
        ours = domicile(binary, "rdp", "--sample-rate", str(q), "--noise-multiplier", str(sigma), "--steps", str(steps),
                        "--delta", str(delta))["epsilon"]
        accountant = dp_rdp.RdpAccountant(orders=ORDERS)
        accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        reference = accountant.get_epsilon(delta)
        checked += 1
        if abs(ours - reference) > 0.01 * max(reference, 1e-9) and abs(ours - reference) > 1e-9:
            failures += 1
            print(f"rdp σ={sigma} q={q} steps={steps} δ={delta}: domicile {ours:.6g}, dp-accounting {reference:.6g}")
    for epsilon, delta in itertools.product([0.1, 0.5, 1.0, 2.0, 8.0], [1e-5, 1e-8]):
        sigma = domicile(binary, "gaussian", "--epsilon", str(epsilon), "--delta", str(delta))["sigma"]
        pld = privacy_loss_distribution.from_gaussian_mechanism(sigma, value_discretization_interval=1e-5)
        reference = pld.get_delta_for_epsilon(epsilon)
        checked += 1
        if abs(reference - delta) > 0.01 * delta:
            failures += 1
            print(f"analytic gaussian ε={epsilon} δ={delta}: σ {sigma:.6g} gives δ {reference:.6g} by the PLD")
    print(f"{checked - failures}/{checked} accountant values agree with dp-accounting {getattr(dp_accounting, '__version__', '')} within 1%")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
