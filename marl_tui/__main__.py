from marl_tui.cli import main

main()
