"""``python -m unity_gym.players NAME --mlagents-port PORT ...``: run a stand-in player."""

import sys

from unity_gym.players.run import main

sys.exit(main())
