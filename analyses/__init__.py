"""One module per scientific question; each is a function plus ``python -m analyses.NAME`` writing tidy
results (CSV) under results/. Installed with visrecur (pip install), so the commands run from any
folder; results/ is relative to where they run (``--out`` picks another path)."""
