"""Common English given-name nicknames, so Bill and William compare as the same first name.

Why: people write the name they are called by (Bill, Peggy, Jim) on one form
and their formal name on another; no string similarity finds Bill ~ William.
A short table written for Spindle (no download at run time): each line is a
formal name followed by the short forms people use for it. A nickname shared
by several formal names (Al: Albert, Alan, Alfred) belongs to all of them.
"""
from __future__ import annotations

import functools

_GROUPS = """
abigail abby abbie gail
abraham abe bram
albert al bert bertie
alan al
alexander alex alec sandy xander lex
alexandra alex sandra sandy lexi alexa
alfred al alf fred freddie
allison ally allie
andrew andy drew
angela angie
anthony tony
arthur art artie
barbara barb babs barbie
benjamin ben benny benji
bernard bernie
beverly bev
bradley brad
bridget bridie biddy
catherine cathy kate katie kathy cat
katherine kathy kate katie kat kitty
kathleen kathy kate katie
charles charlie chuck chas chaz
charlotte charlie lottie lotte
christina chris tina christy
christine chris chrissy tina
christopher chris kit topher
clifford cliff
cynthia cindy
daniel dan danny
david dave davey
deborah debbie deb debra
dennis denny
donald don donnie
dorothy dot dottie dolly
douglas doug
edward ed eddie ted teddy ned
edwin ed eddie
eleanor ellie nell nora
elizabeth liz lizzie beth betty betsy eliza libby lisa bess
emily em emmy millie
eugene gene
frances fran frankie fanny
francis frank frankie
frederick fred freddie fritz
gabriel gabe
gabrielle gabby gaby
geoffrey geoff jeff
gerald gerry jerry
gregory greg
harold harry hal
harriet hattie
helen nell nellie
henry harry hank hal
isabella bella izzy isabel
jacob jake jay
jacqueline jackie
james jim jimmy jamie
janet jan jenny
jeffrey jeff
jennifer jen jenny
jessica jess jessie
john jack johnny jon
jonathan jon jonny nathan
joseph joe joey jos
josephine jo josie
joshua josh
judith judy
julia julie jules
kenneth ken kenny
kimberly kim
lawrence larry laurie
leonard leo len lenny
louis lou louie
madeleine maddie maddy
madison maddie maddy
margaret maggie meg peggy marge margie greta
martha marty mattie patsy
matthew matt matty
melissa mel missy
michael mike mikey mick mickey
michelle shelly
nathaniel nat nate nathan
nicholas nick nicky
nicole nicky nikki
oliver ollie
pamela pam
patricia pat patty tricia trish
patrick pat paddy
peter pete
philip phil pip
rebecca becky becca
richard rick ricky dick rich
robert bob bobby rob robbie bert
ronald ron ronnie
russell russ
samantha sam sammy
samuel sam sammy
sandra sandy
stephanie steph stevie
stephen steve stevie
steven steve stevie
susan sue susie
suzanne sue suzie
terence terry
theodore ted teddy theo
thomas tom tommy
timothy tim timmy
victoria vicky tori
vincent vince vinny
walter walt wally
william bill billy will willy liam
zachary zach zack
""".strip().splitlines()


@functools.cache
def nickname_groups() -> dict[str, frozenset[str]]:
    """Name → the formal names it can stand for (a formal name stands for itself)."""
    groups: dict[str, set[str]] = {}
    for line in _GROUPS:
        formal, *short = line.split()
        for name in (formal, *short):
            groups.setdefault(name, set()).add(formal)
    return {name: frozenset(formals) for name, formals in groups.items()}


def same_person_name(a: str, b: str) -> bool:
    """True when a and b are forms of one given name (Bill ~ William, Peggy ~ Margaret, Al ~ Alfred)."""
    if a == b:
        return True
    table = nickname_groups()
    return bool(table.get(a, frozenset()) & table.get(b, frozenset()))
