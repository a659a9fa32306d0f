from aisec.cli.main import main

main()
