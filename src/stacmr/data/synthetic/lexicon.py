"""The words of the synthetic world: objects (with synonyms), attributes, places, and the scene-text lexicon.

Written for this project. Objects that can carry text (`TEXT_CARRIERS`) are where scene text is drawn, as in COCO-Text,
where most legible text sits on signs, storefronts, vehicles, clothing and packaging. The scene-text lexicon mixes
shop and sign words, brand-like names, place names and numbers, the kinds of tokens CTC captions mention
("a delta plane", "a stop sign", "bus number 42").
"""


def _words(text: str) -> tuple[str, ...]:
    """The words of `text`: the long word lists below are written as lines of words."""
    return tuple(text.split())


# object name → the words captions use for it (the first is the canonical one).
OBJECTS: dict[str, tuple[str, ...]] = {
    "bus": ("bus", "coach"),
    "train": ("train", "locomotive"),
    "truck": ("truck", "lorry"),
    "car": ("car", "sedan"),
    "van": ("van", "minivan"),
    "plane": ("plane", "airplane", "jet"),
    "boat": ("boat", "ship"),
    "sign": ("sign", "signboard"),
    "storefront": ("storefront", "shop front", "store"),
    "billboard": ("billboard", "advertisement"),
    "banner": ("banner", "flag"),
    "poster": ("poster", "placard"),
    "shirt": ("shirt", "jersey", "t-shirt"),
    "bottle": ("bottle", "flask"),
    "can": ("can", "tin"),
    "box": ("box", "package"),
    "clock": ("clock", "timepiece"),
    "laptop": ("laptop", "computer"),
    "phone": ("phone", "cellphone"),
    "book": ("book", "magazine"),
    "cup": ("cup", "mug"),
    "bag": ("bag", "backpack"),
    "man": ("man", "guy", "gentleman"),
    "woman": ("woman", "lady"),
    "child": ("child", "kid", "boy"),
    "dog": ("dog", "puppy"),
    "cat": ("cat", "kitten"),
    "horse": ("horse", "pony"),
    "cow": ("cow", "cattle"),
    "bird": ("bird", "pigeon"),
    "bicycle": ("bicycle", "bike"),
    "motorcycle": ("motorcycle", "motorbike"),
    "bench": ("bench", "seat"),
    "table": ("table", "desk"),
    "chair": ("chair", "stool"),
    "pizza": ("pizza", "pie"),
    "sandwich": ("sandwich", "burger"),
    "cake": ("cake", "dessert"),
    "tree": ("tree", "palm"),
    "elephant": ("elephant",),
    "giraffe": ("giraffe",),
    "skateboard": ("skateboard", "board"),
    "umbrella": ("umbrella", "parasol"),
    "kite": ("kite",),
    "hydrant": ("fire hydrant", "hydrant"),
    "traffic light": ("traffic light", "stoplight"),
}

TEXT_CARRIERS: tuple[str, ...] = _words(
    "bus train truck van plane boat sign storefront billboard banner poster shirt bottle can box clock "
    "laptop book cup bag"
)

ATTRIBUTES: tuple[str, ...] = _words(
    "red blue green yellow white black orange brown large small old new wooden metal shiny dirty"
)

PLACES: tuple[str, ...] = (
    "street",
    "kitchen",
    "park",
    "beach",
    "station",
    "airport",
    "field",
    "market",
    "room",
    "city",
    "road",
    "harbor",
    "sidewalk",
    "parking lot",
)

SCENE_TEXT: tuple[str, ...] = (
    # shops and signs
    *_words(
        "stop pizza coffee bakery hotel taxi police bank pharmacy market exit open sale cafe bar express "
        "museum station airport parking school library fire ambulance deli grill pub inn motel salon books "
        "toys pets garden flowers wine beer tea sushi noodles tacos steak seafood bagels juice milk water "
        "donuts diner laundry bikes tickets welcome danger slow yield oneway closed free news pizzeria "
        "espresso burgers kebab gelato cinema theatre casino gym dental clinic hospital church post office "
        "shoes fashion jewelry optical pawn liquor grocery"
    ),
    # brand-like and transport names
    *_words(
        "delta united alaska virgin lufthansa emirates amtrak metro transit greyhound yankees dodgers lakers "
        "giants rangers kodak canon nokia honda toyota volvo shell citgo texaco pepsi sprite fanta heineken "
        "corona budweiser nike adidas puma reebok apple dell sony samsung intel lego"
    ),
    # places and names
    *_words(
        "broadway main oak elm park king queen union central harbor river lake london paris boston chicago "
        "denver seattle austin miami"
    ),
    # numbers (bus lines, shirt numbers, prices)
    *_words("7 12 23 42 57 99 101 212 365 1998 2010 50"),
)

# Characters an OCR engine confuses (lower case; upper-case forms are handled by the noise model).
OCR_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "o": ("0", "c", "a"),
    "0": ("o", "d"),
    "l": ("1", "i", "t"),
    "i": ("l", "1", "j"),
    "1": ("l", "i", "7"),
    "s": ("5", "z"),
    "5": ("s", "6"),
    "e": ("c", "o"),
    "c": ("e", "o"),
    "a": ("o", "e"),
    "b": ("6", "h"),
    "g": ("9", "q"),
    "z": ("2", "s"),
    "m": ("rn", "n"),
    "u": ("v", "n"),
    "n": ("h", "m", "r"),
    "t": ("f", "l"),
    "h": ("b", "n"),
    "r": ("n",),
    "v": ("u", "y"),
    "w": ("vv",),
    "d": ("cl", "o"),
    "7": ("1", "t"),
    "2": ("z",),
    "9": ("g",),
    "6": ("b",),
    "8": ("b", "3"),
    "3": ("8",),
    "k": ("x",),
    "y": ("v",),
    "p": ("b",),
    "f": ("t",),
}
