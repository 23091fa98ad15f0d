"""`python -m bot`: the `kobot` command (importing this module, as a walk over every module does, runs
nothing)."""

from bot.process import main

if __name__ == "__main__":
    main()
