"""`python -m bot`: the `kobot` command."""

from bot.process import main

main()
