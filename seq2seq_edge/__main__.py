import sys

from seq2seq_edge.cli import main

sys.exit(main())
