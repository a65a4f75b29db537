"""Looking at a sweep's results: the trials table, the best parameters, the HTML report.

Everything here works on a `SweepResults` (model.py), built either from a local run's
results directory or from a Sweep on a cluster, so both kinds of sweep look the same.
"""
