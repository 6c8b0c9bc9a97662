"""`python -m poisonproof`: the same entry point as the `poisonproof` console script."""

from poisonproof.cli import main

main()
