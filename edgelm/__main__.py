from edgelm.cli import main

main()
