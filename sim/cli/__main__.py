"""`python -m sim.cli`: the psmsim command line."""

from sim.cli import main

main()
