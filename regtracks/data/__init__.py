"""Data: a genome FASTA and peak files -> the two tasks' windows, labels and torch datasets."""
