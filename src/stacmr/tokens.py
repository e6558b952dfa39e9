"""The reserved word ids of the caption vocabulary, shared by the vocabulary that assigns them and the models that
embed and decode captions: <pad>, <start>, <end> and <unk> are ids 0-3 of every vocabulary (the caption decoder of
VSRN needs start and end)."""

PAD, START, END, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")  # their words, at these ids
