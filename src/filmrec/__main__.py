from filmrec.cli import main

raise SystemExit(main())
