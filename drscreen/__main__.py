from drscreen.cli import main

main()
