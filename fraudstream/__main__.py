from fraudstream.cli import main

main()
