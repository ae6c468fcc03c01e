"""``python -m regtracks`` (also what ``torchrun -m regtracks`` runs)."""

from regtracks.cli import main

if __name__ == "__main__":
    main()
