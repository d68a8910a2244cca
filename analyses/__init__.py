"""One module per scientific question; each is a function plus ``python -m analyses.NAME`` writing tidy
results (CSV) under results/."""
