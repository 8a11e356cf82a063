from facevox.cli import main

raise SystemExit(main())
