"""Modal dialogs (`ModalScreen[T]`): each returns its answer through `dismiss`."""
