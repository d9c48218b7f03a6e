from rsigma.cli.app import main

main()
