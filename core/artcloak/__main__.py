"""python -m artcloak"""

from .cli import main

main()
