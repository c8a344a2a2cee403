"""`python -m tasks.colorize ensemble OUTPUT_DIR MEMBER_DIR MEMBER_DIR ...`: see `tasks.colorize.ensemble`."""

from tasks.colorize.ensemble import main

if __name__ == "__main__":
    main()
