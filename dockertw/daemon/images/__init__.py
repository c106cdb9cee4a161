"""The image store: references (:mod:`.reference`), layer tars (:mod:`.layers`) and the
content-addressed store of layers, configs and tags (:mod:`.store`)."""
