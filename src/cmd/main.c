int sk_main_placeholder;
